//go:build linux

package uswitch

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/uswitch/switchtest"
)

// FuzzControlRequest writes arbitrary bytes as a control request to a live
// switch: it must answer with nothing or exactly one 110-byte address, never
// crash, and keep serving well-formed clients.
func FuzzControlRequest(f *testing.F) {
	files, _ := filepath.Glob("../switchproto/testdata/*.bin")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	ok, _ := (&switchproto.Request{Version: 3, Addr: switchtest.UMLAddr()}).MarshalBinary()
	f.Add(ok)
	f.Add([]byte{0xce, 0xfa, 0xed, 0xfe, 2, 0, 0, 0})
	f.Add([]byte{})

	ctl := filepath.Join(f.TempDir(), "fz.ctl")
	s, err := Listen(Config{CtlPath: ctl})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done; s.Close() }()

	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("unix", ctl)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if len(raw) > 0 {
			c.Write(raw)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if n != 0 && n != switchproto.ReplySize {
			t.Fatalf("reply of %d bytes to %x", n, raw)
		}
		// Still serving.
		cl, err := switchtest.Dial(ctl, nil)
		if err != nil {
			t.Fatalf("switch stopped serving after %x: %v", raw, err)
		}
		cl.Close()
	})
}
