//go:build linux

// Package netdev is the eth devices of `linux`: one Driver per UML
// transport (daemon, tuntap, mcast, ucast, vde, slirp), each in a file of
// its own holding the transport's typed spec parse, its host half (run by
// linux's host process P: registry.go, Open) and its kernel half (run by
// K: the Transport it wraps around the descriptor P opened), plus the
// guest's TAP/TUN devices (tap.go), the Relay between a guest device and
// its transport, and the kernel data path that replaces device and relay
// by a veth pair joined to a host interface in the kernel when linux runs
// as root (kpath.go). A new transport is one new file and its tests.
//
// Spec: shared/spec/net.md §1–§4 and shared/spec/switch.md §2–§3, §7.
// Every descriptor is non-blocking on the Go poller, so Close unblocks
// readers.
package netdev

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/switchproto"
	"github.com/umlkit/umlkit/internal/sys"
)

// Transport carries whole Ethernet frames (destination MAC first, no FCS).
type Transport interface {
	// ReadFrame reads one frame into b and returns its length.
	ReadFrame(b []byte) (int, error)
	// WriteFrame sends one frame.
	WriteFrame(b []byte) error
	// Close releases the transport and unblocks ReadFrame.
	Close() error
}

// MTU is the payload size of every eth device (net.md §1).
const MTU = 1500

// bufSize is a relay buffer: an MTU frame plus header room, as UML's mtu+26,
// rounded up generously so a larger datagram is not truncated.
const bufSize = switchproto.MaxVnetDatagram // a whole 64 KiB IP packet (a large segment), its Ethernet and vnet headers

// File is a transport over a descriptor that reads and writes one frame
// per read(2)/write(2): a TAP device.
type File struct {
	f  *os.File
	rc syscall.RawConn

	wmu     sync.Mutex // guards wframe, werr (one relay pump writes; cheap)
	wframe  []byte
	werr    error
	writeFn func(fd uintptr) bool // allocation-free poller callback
}

// NewFile wraps f (which it owns from now on) as a frame transport.
func NewFile(f *os.File) (*File, error) {
	p, err := sys.Pollable(f, f.Name())
	if err != nil {
		return nil, err
	}
	rc, err := p.SyscallConn()
	if err != nil {
		p.Close()
		return nil, err
	}
	t := &File{f: p, rc: rc}
	t.writeFn = func(fd uintptr) bool {
		// Raw, as readFrames reads: a full socket buffer (EAGAIN) waits
		// for the poller; a TAP write does not wait.
		_, t.werr = sys.RawWrite(int(fd), t.wframe)
		return t.werr != unix.EAGAIN
	}
	return t, nil
}

// ReadFrame implements Transport.
func (t *File) ReadFrame(b []byte) (int, error) { return t.f.Read(b) }

// WriteFrame implements Transport.
func (t *File) WriteFrame(b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.wframe = b
	err := t.rc.Write(t.writeFn)
	t.wframe = nil
	if err != nil {
		return closedErr(err) // the poller fails only once the file is closed
	}
	if t.werr != nil {
		return os.NewSyscallError("write", t.werr)
	}
	return nil
}

// Close implements Transport.
func (t *File) Close() error { return t.f.Close() }

// Relay copies frames both ways between a and b (a guest device and its
// transport) until Stop is called or one side is closed. A frame that
// cannot be delivered is dropped, as a NIC would drop it.
type Relay struct {
	a, b Transport
	wg   sync.WaitGroup // the two pumps
	once sync.Once      // Stop

	errMu sync.Mutex // guards err
	err   error      // the first read error that ended a direction, other than a close
}

// StartRelay starts the two copying goroutines between a and b. The relay
// owns both transports: Stop closes them.
func StartRelay(a, b Transport) *Relay {
	r := &Relay{a: a, b: b}
	r.wg.Add(2)
	go r.pump(a, b)
	go r.pump(b, a)
	return r
}

// StartDevice starts moving the frames of the guest's device tap over its
// transport tr: a switch that takes the device itself gets it (one process
// between two such guests instead of three), else a relay copies them.
// Either way Stop closes both.
func StartDevice(tap *File, tr Transport) *Relay {
	if d, ok := tr.(*Daemon); ok && d.attach(tap) {
		return &Relay{a: tap, b: tr}
	}
	return StartRelay(tap, tr)
}

// pump copies from → to. Each wake-up moves every frame that is ready (up
// to relayBatch, FramesReader), handed on in one WriteFrames where to
// takes batches (FramesWriter).
func (r *Relay) pump(from, to Transport) {
	defer r.wg.Done()
	br, ok := from.(FramesReader)
	batch := relayBatch
	if !ok {
		br, batch = oneFrame{from}, 1
	}
	slab := make([]byte, batch*bufSize) // untouched pages cost no memory until used
	bufs, frames, lens := make([][]byte, batch), make([][]byte, batch), make([]int, batch)
	for i := range bufs {
		bufs[i] = slab[i*bufSize : (i+1)*bufSize]
	}
	fw, _ := to.(FramesWriter)
	fails := 0
	for {
		n, err := br.ReadFrames(bufs, lens)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) || fails > 100 {
				r.setErr(err)
				return
			}
			// A transient error (e.g. ECONNREFUSED after the peer went
			// away): back off briefly and keep the device alive.
			fails++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		fails = 0
		k := 0
		for i := range n {
			if lens[i] > 0 {
				frames[k] = bufs[i][:lens[i]]
				k++
			}
		}
		// Frames that cannot be delivered are dropped, as a NIC would.
		if fw != nil && k > 1 {
			fw.WriteFrames(frames[:k])
			continue
		}
		for _, f := range frames[:k] {
			to.WriteFrame(f)
		}
	}
}

// oneFrame reads a transport without batches one frame at a time.
type oneFrame struct{ Transport }

func (o oneFrame) ReadFrames(bufs [][]byte, lens []int) (int, error) {
	n, err := o.ReadFrame(bufs[0])
	if err != nil {
		return 0, err
	}
	lens[0] = n
	return 1, nil
}

func (r *Relay) setErr(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.err == nil && !errors.Is(err, os.ErrClosed) {
		r.err = err
	}
}

// Err returns the read error that ended a direction, if any other than
// the transports being closed.
func (r *Relay) Err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// Stop closes both transports and waits for the goroutines.
func (r *Relay) Stop() error {
	var err error
	r.once.Do(func() {
		e1, e2 := r.a.Close(), r.b.Close()
		err = errors.Join(e1, e2)
		r.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("stop relay: %w", err)
	}
	return nil
}

var (
	_ Transport = (*File)(nil)
	_ Transport = (*Daemon)(nil)
	_ Transport = (*Datagram)(nil)
)
