package slip

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestAppend(t *testing.T) {
	got := Append(nil, []byte{1, End, 2, Esc, 3})
	want := []byte{End, 1, Esc, EscEnd, 2, Esc, EscEsc, 3, End}
	if !bytes.Equal(got, want) {
		t.Errorf("Append = % x, want % x", got, want)
	}
}

func TestReader(t *testing.T) {
	stream := []byte{End, End, 'a', 'b', End, Esc, EscEnd, Esc, EscEsc, Esc, 'x', End, 'p', 'a', 'r', 't'}
	r := NewReader(bytes.NewReader(stream))
	buf := make([]byte, 16)
	for _, want := range [][]byte{[]byte("ab"), {End, Esc, 'x'}} {
		n, err := r.ReadPacket(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("ReadPacket = % x, %v; want % x", buf[:n], err, want)
		}
	}
	if _, err := r.ReadPacket(buf); err != io.EOF {
		t.Errorf("after a partial packet: %v, want EOF", err)
	}
}

func TestReaderTooLong(t *testing.T) {
	stream := Append(nil, bytes.Repeat([]byte{7}, 20))
	stream = Append(stream, []byte("ok"))
	r := NewReader(bytes.NewReader(stream))
	buf := make([]byte, 8)
	if _, err := r.ReadPacket(buf); !errors.Is(err, ErrTooLong) {
		t.Fatalf("long packet: %v, want ErrTooLong", err)
	}
	if n, err := r.ReadPacket(buf); err != nil || string(buf[:n]) != "ok" {
		t.Errorf("after a long packet: %q, %v", buf[:n], err)
	}
}

// FuzzRoundTrip: every packet survives Append then ReadPacket, and the
// Reader never panics on arbitrary input.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), []byte{End, Esc, 0})
	f.Add([]byte{End, Esc, EscEnd, EscEsc}, []byte{Esc, Esc, End, End})
	f.Fuzz(func(t *testing.T, packet, junk []byte) {
		buf := make([]byte, MaxPacket)
		r := NewReader(bytes.NewReader(junk))
		for {
			if _, err := r.ReadPacket(buf); err == io.EOF {
				break
			}
		}
		if len(packet) == 0 || len(packet) > MaxPacket {
			return
		}
		r = NewReader(bytes.NewReader(Append(nil, packet)))
		n, err := r.ReadPacket(buf)
		if err != nil || !bytes.Equal(buf[:n], packet) {
			t.Fatalf("round trip of % x: % x, %v", packet, buf[:n], err)
		}
	})
}
