//go:build linux

package uswitch

import (
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/uswitch/switchtest"
)

// TestBackpressure: a receiver slower than the sender loses nothing on a
// known-unicast path; the switch waits for room in its queue.
func TestBackpressure(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b := dial(t, r), dial(t, r)
	a.Send(switchtest.Frame(bc, macA, 60))
	expectFrame(t, b, switchtest.Frame(bc, macA, 60))
	b.Send(switchtest.Frame(bc, macB, 60))
	expectFrame(t, a, switchtest.Frame(bc, macB, 60))
	if err := a.SetBlockingSends(); err != nil {
		t.Fatal(err)
	}
	const n = 300
	f := switchtest.Frame(macB, macA, 1514)
	go a.SendBurst(f, n)
	buf := make([]byte, 2000)
	got := 0
	for got < n {
		if _, err := b.Recv(buf, 2*time.Second); err != nil {
			break
		}
		got++
		time.Sleep(200 * time.Microsecond)
	}
	if got != n {
		t.Errorf("received %d of %d frames; counters %+v", got, n, r.s.Counters())
	}
}
