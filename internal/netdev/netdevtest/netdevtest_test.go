//go:build linux

package netdevtest

import (
	"bytes"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/netdev"
	"github.com/umlkit/umlkit/internal/testutil"
)

func TestPipe(t *testing.T) {
	a, b, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	frame := []byte("\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x88\xb5hello")
	if err := a.WriteFrame(frame); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := b.ReadFrame(buf)
	if err != nil || !bytes.Equal(buf[:n], frame) {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

// TestRelay relays between two pipes both ways, then checks Stop returns
// promptly with both readers blocked.
func TestRelay(t *testing.T) {
	testutil.LeakCheck(t)
	guest, tapSide, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	hostSide, host, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	defer host.Close()
	r := netdev.StartRelay(tapSide, hostSide)
	buf := make([]byte, 2000)
	for i, c := range []struct{ from, to *netdev.File }{{guest, host}, {host, guest}, {guest, host}} {
		frame := bytes.Repeat([]byte{byte(i + 1)}, 60+i*700)
		if err := c.from.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
		n, err := c.to.ReadFrame(buf)
		if err != nil || !bytes.Equal(buf[:n], frame) {
			t.Fatalf("frame %d: got %d bytes, %v", i, n, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung")
	}
}
