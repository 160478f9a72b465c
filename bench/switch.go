package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/umlkit/umlkit/internal/uswitch/switchtest"
)

// switch: a load generator attaches N ports to a switch through the real
// control protocol (UML-style abstract data addresses, v3 requests) and
// pushes unicast frames of 64 and 1514 bytes between port pairs; the metric
// is what the receivers actually get per second. Ours, Debian's uml_switch
// and vde_switch (uml_switch protocol on DIR/ctl) in one run.

const (
	switchPorts   = 4 // two sender→receiver pairs
	switchWarmup  = 200 * time.Millisecond
	switchMeasure = time.Second
)

// switchFrameSizes are the frame sizes measured, in order.
var switchFrameSizes = []int{64, 1514}

// portMAC is the MAC address of the load generator's port i.
func portMAC(i int) [6]byte { return [6]byte{2, 0, 0, 0, 0, byte(i + 1)} }

// forwarding measures the switch of kind: frames and bytes per second
// delivered at each frame size.
func forwarding(e *Env, kind string) ([]Metric, error) {
	s, err := startSwitchProc(e, kind)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	cs, err := attachPorts(s.ctl, kind)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := learnPorts(cs, kind); err != nil {
		return nil, err
	}
	var ms []Metric
	for _, size := range switchFrameSizes {
		frames, bytes, err := load(cs, portMAC, size, switchWarmup, switchMeasure)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		ms = append(ms,
			Metric{fmt.Sprintf("%dB frames/s", size), frames, "fr/s"},
			Metric{fmt.Sprintf("%dB MB/s", size), bytes / 1e6, "MB/s"})
	}
	return ms, nil
}

// attachPorts attaches switchPorts clients with blocking sends to the switch
// at ctl; on error it returns those attached so far too.
func attachPorts(ctl, kind string) ([]*switchtest.Client, error) {
	var cs []*switchtest.Client
	for i := 0; i < switchPorts; i++ {
		c, err := switchtest.Dial(ctl, nil)
		for try := 0; err != nil && errors.Is(err, syscall.ECONNREFUSED) && try < 100; try++ {
			// the socket file exists a moment before listen()
			time.Sleep(10 * time.Millisecond)
			c, err = switchtest.Dial(ctl, nil)
		}
		if err != nil {
			return cs, fmt.Errorf("%s: attach port %d: %w", kind, i, err)
		}
		cs = append(cs, c)
		if err := c.SetBlockingSends(); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// learnPorts lets the switch learn every port with a broadcast from each,
// then drains the broadcasts.
func learnPorts(cs []*switchtest.Client, kind string) error {
	bc := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i, c := range cs {
		if err := c.Send(switchtest.Frame(bc, portMAC(i), 64)); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			if _, _, err := c.RecvBurst(bufs); err != nil {
				break
			}
		}
	}
	return nil
}

// switchProc is one switch under test.
type switchProc struct {
	cmd   *exec.Cmd
	ctl   string
	stdin io.WriteCloser
}

// stop kills the switch's process group and reaps it.
func (s *switchProc) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	if s.stdin != nil {
		s.stdin.Close()
	}
	s.cmd.Wait()
}

// load runs senders cs[0]→cs[1], cs[2]→cs[3], ... for warmup+measure and
// returns the frames/s and bytes/s delivered during the measure window.
func load(cs []*switchtest.Client, mac func(int) [6]byte, size int, warmup, measure time.Duration) (float64, float64, error) {
	var stop atomic.Bool
	var frames, bytes atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, len(cs))
	for i := 0; i+1 < len(cs); i += 2 {
		src, dst := cs[i], cs[i+1]
		f := switchtest.Frame(mac(i+1), mac(i), size)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := src.SendBurst(f, 64); err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			bufs := make([][]byte, 64)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			for !stop.Load() {
				dst.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				n, b, err := dst.RecvBurst(bufs)
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						continue
					}
					errc <- err
					return
				}
				frames.Add(int64(n))
				bytes.Add(int64(b))
			}
		}()
	}
	time.Sleep(warmup)
	f0, b0, t0 := frames.Load(), bytes.Load(), time.Now()
	time.Sleep(measure)
	f1, b1, t1 := frames.Load(), bytes.Load(), time.Now()
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, 0, err
	default:
	}
	secs := t1.Sub(t0).Seconds()
	return float64(f1-f0) / secs, float64(b1-b0) / secs, nil
}

// startSwitchProc starts one switch (ours, real, vde) and waits for its
// control socket.
func startSwitchProc(e *Env, kind string) (*switchProc, error) {
	dir, err := os.MkdirTemp(e.Dir, kind+"-")
	if err != nil {
		return nil, err
	}
	s := &switchProc{}
	switch kind {
	case "ours":
		s.ctl = filepath.Join(dir, "sw.ctl")
		s.cmd = exec.Command(e.Ours("uml_switch"), "-unix", s.ctl)
	case "real":
		s.ctl = filepath.Join(dir, "sw.ctl")
		s.cmd = exec.Command("/usr/bin/uml_switch", "-unix", s.ctl)
	case "vde":
		s.ctl = filepath.Join(dir, "vde", "ctl")
		s.cmd = exec.Command("vde_switch", "-s", filepath.Join(dir, "vde"))
		// vde_switch exits at stdin EOF: hold it open.
		if s.stdin, err = s.cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, err := os.Stat(s.ctl); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s: control socket %s never appeared", kind, s.ctl)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, nil
}
