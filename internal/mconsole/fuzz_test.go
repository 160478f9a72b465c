package mconsole

import (
	"os"
	"testing"
)

func FuzzRequest(f *testing.F) {
	for _, tt := range requestTests {
		f.Add(tt.raw)
	}
	if b, err := os.ReadFile("testdata/request-version.bin"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v): %v", r, err)
		}
		var r2 Request
		if err := r2.UnmarshalBinary(enc); err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}

func FuzzReply(f *testing.F) {
	for _, tt := range replyTests {
		f.Add(hexb(f, tt.raw))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Reply
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v): %v", r, err)
		}
		var r2 Reply
		if err := r2.UnmarshalBinary(enc); err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
		// Split then reassemble gives the text back.
		var text string
		for _, p := range Split(r.Err, r.Text+r.Text, true) {
			text += p.Text
		}
		if text != r.Text+r.Text {
			t.Fatalf("Split lost text")
		}
	})
}

func FuzzNotify(f *testing.F) {
	f.Add(WatchdogHangPacket())
	f.Add(hexb(f, "bebafeca 02000000 03000000 0f000000 68656c6c6f2066726f6d20756d6c0a"))
	f.Add(hexb(f, "bebafeca 02000000 00000000 03000000 2f7800"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Notify
		if err := n.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := n.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v): %v", n, err)
		}
		var n2 Notify
		if err := n2.UnmarshalBinary(enc); err != nil || n2.Type != n.Type || string(n2.Data) != string(n.Data) {
			t.Fatalf("round trip: %+v -> %+v, %v", n, n2, err)
		}
	})
}
