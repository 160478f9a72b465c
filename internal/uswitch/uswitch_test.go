//go:build linux

package uswitch

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/uswitch/switchtest"
)

type rig struct {
	s    *Switch
	ctl  string
	out  *testutil.SyncBuffer
	errb *testutil.SyncBuffer
	sigs chan os.Signal
	done chan error
}

func (r *rig) waitOut(t *testing.T, want string) {
	t.Helper()
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(r.out.String(), want) }); err != nil {
		t.Fatalf("stdout never showed %q; stdout:\n%s\nstderr:\n%s", want, r.out.String(), r.errb.String())
	}
}

func (r *rig) waitErr(t *testing.T, want string) {
	t.Helper()
	if err := testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(r.errb.String(), want) }); err != nil {
		t.Fatalf("stderr never showed %q; stderr:\n%s", want, r.errb.String())
	}
}

func startSwitch(t *testing.T, cfg Config) *rig {
	t.Helper()
	testutil.LeakCheck(t)
	r := &rig{out: &testutil.SyncBuffer{}, errb: &testutil.SyncBuffer{}, sigs: make(chan os.Signal, 1), done: make(chan error, 1)}
	if cfg.CtlPath == "" {
		cfg.CtlPath = filepath.Join(t.TempDir(), "sw.ctl")
	}
	r.ctl = cfg.CtlPath
	cfg.Stdout, cfg.Stderr, cfg.Signals = r.out, r.errb, r.sigs
	s, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	r.s = s
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		s.Close()
	})
	return r
}

func dial(t *testing.T, r *rig) *switchtest.Client {
	t.Helper()
	c, err := switchtest.Dial(r.ctl, nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	macA = [6]byte{2, 0, 0, 0, 0, 1}
	macB = [6]byte{2, 0, 0, 0, 0, 2}
	macC = [6]byte{2, 0, 0, 0, 0, 3}
	bc   = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func expectFrame(t *testing.T, c *switchtest.Client, want []byte) {
	t.Helper()
	buf := make([]byte, 70000)
	n, err := c.Recv(buf, 2*time.Second)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("Recv = %d bytes %x...; want %d bytes %x...", n, buf[:min(n, 20)], len(want), want[:min(len(want), 20)])
	}
}

func expectNothing(t *testing.T, c *switchtest.Client) {
	t.Helper()
	buf := make([]byte, 70000)
	if n, err := c.Recv(buf, 150*time.Millisecond); err == nil {
		t.Fatalf("Recv got an unexpected %d-byte frame %x", n, buf[:min(n, 20)])
	}
}

func TestSwitchLearnsAndForwards(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b, c := dial(t, r), dial(t, r), dial(t, r)
	// Each client gets a data socket of its own (abstract, uml_switch blob).
	if !a.Switch.IsAbstract() || a.Switch.Family() != switchproto.AFUnix || a.Switch == b.Switch || a.Switch == c.Switch {
		t.Fatalf("replies %q %q %q are not distinct abstract addresses", a.Switch.String(), b.Switch.String(), c.Switch.String())
	}
	r.waitOut(t, "New connection\nNew connection\nNew connection\n")

	f := switchtest.Frame(bc, macA, 60)
	if err := a.Send(f); err != nil {
		t.Fatal(err)
	}
	expectFrame(t, b, f)
	expectFrame(t, c, f)
	expectNothing(t, a)
	r.waitOut(t, " Addr: 02:00:00:00:00:01 New port ")

	// B answers A: only A gets it.
	f2 := switchtest.Frame(macA, macB, 1514)
	b.Send(f2)
	expectFrame(t, a, f2)
	expectNothing(t, c)

	// Unknown unicast: flooded, logged with the source MAC.
	f3 := switchtest.Frame(macC, macA, 100)
	a.Send(f3)
	expectFrame(t, b, f3)
	expectFrame(t, c, f3)
	r.waitOut(t, "unknown Addr: 02:00:00:00:00:01 from port ")

	// A's MAC moves to C's port.
	f4 := switchtest.Frame(bc, macA, 60)
	c.Send(f4)
	expectFrame(t, a, f4)
	expectFrame(t, b, f4)
	r.waitOut(t, " old port ")
	b.Send(f2)
	expectFrame(t, c, f2)
	expectNothing(t, a)
}

func TestHub(t *testing.T) {
	r := startSwitch(t, Config{Hub: true})
	a, b, c := dial(t, r), dial(t, r), dial(t, r)
	a.Send(switchtest.Frame(bc, macA, 60))
	expectFrame(t, b, switchtest.Frame(bc, macA, 60))
	expectFrame(t, c, switchtest.Frame(bc, macA, 60))
	f := switchtest.Frame(macA, macB, 200)
	b.Send(f)
	expectFrame(t, a, f)
	expectFrame(t, c, f) // a hub floods known unicast too
	if strings.Contains(r.out.String(), "unknown Addr") {
		t.Errorf("hub logged unknown addresses:\n%s", r.out.String())
	}
}

func TestJumboAndOversized(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b := dial(t, r), dial(t, r)
	for _, size := range []int{1518, 9000, switchproto.MaxFrame} {
		f := switchtest.Frame(bc, macA, size)
		if err := a.Send(f); err != nil {
			t.Fatalf("send %d: %v", size, err)
		}
		expectFrame(t, b, f)
	}
	if err := a.Send(switchtest.Frame(bc, macA, switchproto.MaxFrame+1)); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, b)
	r.waitErr(t, "Oversized datagram")
	a.Send(make([]byte, 10))
	expectNothing(t, b)
	r.waitErr(t, "Short frame of 10 bytes")
	// Still forwarding.
	f := switchtest.Frame(bc, macA, 64)
	a.Send(f)
	expectFrame(t, b, f)
}

func TestUnknownSenderDropped(t *testing.T) {
	r := startSwitch(t, Config{})
	a := dial(t, r)
	// A socket that never registered sends to the switch's data address.
	stranger, err := switchtest.Dial(r.ctl, &switchtest.Options{Request: func(switchproto.Sockaddr) []byte { return []byte{1, 2, 3, 4} }, NoReply: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	addr := r.s.DataAddr()
	if err := stranger.SendTo(switchtest.Frame(bc, macB, 60), &addr, switchproto.SockaddrSize); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, a)
	r.waitOut(t, "Unknown connection for packet, shouldn't happen.\n")
}

func TestBadRequests(t *testing.T) {
	r := startSwitch(t, Config{})
	send := func(raw []byte) {
		t.Helper()
		c, err := net.Dial("unix", r.ctl)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if raw != nil {
			c.Write(raw)
		}
		if raw == nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [200]byte
		if n, _ := c.Read(b[:]); n != 0 {
			t.Errorf("request %x got a %d-byte reply", raw[:min(len(raw), 12)], n)
		}
	}
	addr := switchtest.UMLAddr()
	v := func(version, typ uint32) []byte {
		raw, _ := (&switchproto.Request{Version: 3, Addr: addr}).MarshalBinary()
		raw[4], raw[8] = byte(version), byte(typ)
		return raw
	}
	send(v(2, 0))
	r.waitErr(t, "Version 2 is not supported\n")
	send(v(7, 0))
	r.waitErr(t, "Request for a version 7 port, which this uml_switch doesn't support\n")
	send(v(3, 5))
	r.waitOut(t, "Bad request type : 5\n")
	send([]byte{0xce, 0xfa, 0xed, 0xfe, 3, 0, 0, 0, 0})
	r.waitErr(t, "Bad request : short control request")
	send(nil)
	r.waitOut(t, "EOF from new port\n")
	// Garbage on an established connection.
	c := dial(t, r)
	c.Ctl.Write([]byte("x"))
	r.waitOut(t, "Bad request\n")
	c.Ctl.Close()
	r.waitOut(t, "Disconnect\n")
	if len(r.s.Counters()) != 0 {
		t.Errorf("ports left after bad requests: %+v", r.s.Counters())
	}
}

func TestDisconnectForgetsMACs(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b, c := dial(t, r), dial(t, r), dial(t, r)
	a.Send(switchtest.Frame(bc, macA, 60))
	expectFrame(t, b, switchtest.Frame(bc, macA, 60))
	expectFrame(t, c, switchtest.Frame(bc, macA, 60))
	a.Close()
	r.waitOut(t, "Disconnect\n")
	f := switchtest.Frame(macA, macB, 60)
	b.Send(f)
	expectFrame(t, c, f) // A's MAC is unknown again: flooded
}

func TestAging(t *testing.T) {
	r := startSwitch(t, Config{AgeLimit: time.Second})
	a, b, c := dial(t, r), dial(t, r), dial(t, r)
	a.Send(switchtest.Frame(bc, macA, 60))
	expectFrame(t, b, switchtest.Frame(bc, macA, 60))
	expectFrame(t, c, switchtest.Frame(bc, macA, 60))
	f := switchtest.Frame(macA, macB, 60)
	b.Send(f)
	expectFrame(t, a, f)
	expectNothing(t, c)
	time.Sleep(1300 * time.Millisecond)
	b.Send(f)
	expectFrame(t, a, f)
	expectFrame(t, c, f)
}

func TestCompatV0(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sw.data")
	r := startSwitch(t, Config{CompatV0: true, DataPath: data})
	r.waitOut(t, "attached to unix sockets '"+r.ctl+"' and '"+data+"'\n")
	if st, err := os.Stat(data); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("data socket %s: %v", data, err)
	}
	mk := func(path string, mac [6]byte) *switchtest.Client {
		sa, _ := switchproto.NamedSockaddr(path)
		c, err := switchtest.Dial(r.ctl, &switchtest.Options{Addr: &sa, NoReply: true, Request: func(a switchproto.Sockaddr) []byte {
			raw, _ := (&switchproto.Request{Version: 0, MAC: mac, Addr: a}).MarshalBinary()
			return raw
		}})
		if err != nil {
			t.Fatal(err)
		}
		c.Switch, _ = switchproto.NamedSockaddr(data)
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := mk(filepath.Join(dir, "a"), macA), mk(filepath.Join(dir, "b"), macB)
	r.waitOut(t, "New connection\nNew connection\n")
	f := switchtest.Frame(bc, macA, 60)
	a.Send(f)
	expectFrame(t, b, f)
}

func TestStaleAndLiveSocket(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "sw.ctl")
	// A plain file (or a dead socket) is replaced.
	os.WriteFile(ctl, []byte("stale"), 0o644)
	r := startSwitch(t, Config{CtlPath: ctl})
	r.waitOut(t, "attached to unix socket '"+ctl+"'\n")
	// A live one is refused with the real message.
	var errb testutil.SyncBuffer
	_, err := Listen(Config{CtlPath: ctl, Prog: "uml_switch", Stderr: &errb})
	var re *ReportedError
	if !errors.As(err, &re) || !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second Listen = %v; want ReportedError(ErrSocketInUse)", err)
	}
	want := "The control socket '" + ctl + "' has another server attached to it\nYou can either\n\tremove '" + ctl +
		"'\n\tor rerun with a different, unused filename for a socket\n"
	if d := cmp.Diff(want, errb.String()); d != "" {
		t.Errorf("live-socket message (-want +got):\n%s", d)
	}
	dial(t, r) // the first switch still serves
}

func TestSignalsAndCounters(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b := dial(t, r), dial(t, r)
	f := switchtest.Frame(bc, macA, 100)
	a.Send(f)
	expectFrame(t, b, f)
	testutil.WaitFor(2*time.Second, func() bool {
		var tx uint64
		for _, c := range r.s.Counters() {
			tx += c.TxFrames
		}
		return tx == 1
	})
	r.sigs <- syscall.SIGUSR1
	r.waitOut(t, "rx 1 frames 100 bytes, tx 0 frames 0 bytes, 0 dropped\n")
	r.waitOut(t, "rx 0 frames 0 bytes, tx 1 frames 100 bytes, 0 dropped\n")
	r.sigs <- syscall.SIGTERM
	var err error
	select {
	case err = <-r.done:
		r.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("switch did not stop on SIGTERM")
	}
	var se *SignalError
	if !errors.As(err, &se) || se.Signal != syscall.SIGTERM {
		t.Fatalf("Run = %v; want SignalError(SIGTERM)", err)
	}
	r.waitOut(t, "Caught signal 15, cleaning up and exiting\n")
	if _, err := os.Stat(r.ctl); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket still exists after SIGTERM: %v", err)
	}
}

func TestStdinEOF(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r := startSwitch(t, Config{Stdin: pr})
	pw.Write([]byte("ignored\n"))
	pw.Close()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("Run = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("switch did not stop on stdin EOF")
	}
	r.waitOut(t, "EOF on stdin, cleaning up and exiting\n")
	if _, err := os.Stat(r.ctl); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
}

func TestSlowReceiverDoesNotStallSwitch(t *testing.T) {
	r := startSwitch(t, Config{})
	a, b, slow := dial(t, r), dial(t, r), dial(t, r)
	_ = slow // never reads: its queue fills
	if err := a.SetBlockingSends(); err != nil {
		t.Fatal(err)
	}
	f := switchtest.Frame(bc, macA, 1514)
	start := time.Now()
	n := 0
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2000)
	}
	go a.SendBurst(f, 3000)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n < 3000 {
		k, _, err := b.RecvBurst(bufs)
		if err != nil {
			t.Fatalf("after %d frames: %v %+v", n, err, r.s.Counters())
		}
		n += k
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("3000 frames took %v with a stuck port", d)
	}
	var drops uint64
	for _, c := range r.s.Counters() {
		drops += c.Drops
	}
	if drops == 0 {
		t.Errorf("no drops counted for the stuck port: %+v", r.s.Counters())
	}
	_ = unix.EAGAIN
}

func TestSocketActivation(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "act.ctl")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	r := startSwitch(t, Config{CtlFile: f, CtlPath: "/ignored"})
	r.ctl = ctl
	r.waitOut(t, "uml_switch attached to unix socket '"+ctl+"'\n")
	a, b := dial(t, r), dial(t, r)
	fr := switchtest.Frame(bc, macA, 60)
	a.Send(fr)
	expectFrame(t, b, fr)
	r.sigs <- syscall.SIGTERM
	err = <-r.done
	r.done <- err
	if _, err := os.Stat(ctl); err != nil {
		t.Errorf("inherited control socket was removed: %v", err)
	}

	// A descriptor that is not a listening stream socket is refused.
	df, _ := os.Open(os.DevNull)
	defer df.Close()
	if _, err := Listen(Config{CtlFile: df}); !errors.Is(err, ErrNotListeningSocket) {
		t.Errorf("Listen(CtlFile=/dev/null) = %v; want ErrNotListeningSocket", err)
	}
}

func TestDeadSocketReplaced(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "dead.ctl")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the socket file stays, nobody listens: a crashed switch
	r := startSwitch(t, Config{CtlPath: ctl})
	r.waitOut(t, "attached to unix socket '"+ctl+"'\n")
	dial(t, r)
}

// TestManyPortsFlood: a burst of broadcasts to 39 ports overflows one send
// batch; every port still gets every frame.
func TestManyPortsFlood(t *testing.T) {
	r := startSwitch(t, Config{})
	const ports, frames = 40, 20
	cs := make([]*switchtest.Client, ports)
	for i := range cs {
		cs[i] = dial(t, r)
	}
	counts := make([]int, ports)
	var wg sync.WaitGroup
	for i := 1; i < ports; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2000)
			for counts[i] < frames {
				if _, err := cs[i].Recv(buf, 3*time.Second); err != nil {
					return
				}
				counts[i]++
			}
		}()
	}
	if err := cs[0].SetBlockingSends(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].SendBurst(switchtest.Frame(bc, macA, 200), frames); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := 1; i < ports; i++ {
		if counts[i] != frames {
			t.Errorf("port %d got %d of %d broadcasts", i, counts[i], frames)
		}
	}
}
