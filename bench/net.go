package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/sys"
)

// net: tunctl create+delete and `uml_net 4 tuntap up` latency, ours vs
// Debian's. Every measurement runs in a network namespace of its own,
// created and deleted around it (needs root).

// withNetNS runs f in a new network namespace named after prefix, deleted
// when f returns.
func withNetNS(prefix string, f func(ns string) ([]Metric, error)) ([]Metric, error) {
	ns := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	return f(ns)
}

// tunctlCycles times tunctl creating and deleting a tap, ten times.
func tunctlCycles(e *Env, path string) ([]Metric, error) {
	return withNetNS("umlkit-bench-net", func(ns string) ([]Metric, error) {
		const n = 10
		var total float64
		for i := 0; i < n; i++ {
			for _, args := range [][]string{{"-t", "benchtap"}, {"-d", "benchtap"}} {
				ms, err := Timed(exec.Command("ip", append([]string{"netns", "exec", ns, path}, args...)...))
				if err != nil {
					return nil, err
				}
				total += ms
			}
		}
		return []Metric{{"tunctl create+delete", total / n, "ms"}}, nil
	})
}

// tuntapUps times uml_net bringing a tap up (tuntapUp), ten times.
func tuntapUps(e *Env, path string) ([]Metric, error) {
	return withNetNS("umlkit-bench-net", func(ns string) ([]Metric, error) {
		const n = 10
		var total float64
		for i := 0; i < n; i++ {
			ms, err := tuntapUp(ns, path)
			if err != nil {
				return nil, err
			}
			total += ms
		}
		return []Metric{{"uml_net tuntap up", total / n, "ms"}}, nil
	})
}

// tuntapUp runs `uml_net 4 tuntap up 10.9.0.1` in ns with fd 1 a datagram
// socketpair and returns the time until the reply with the tap fd arrived
// and the helper exited.
func tuntapUp(ns, path string) (float64, error) {
	mine, theirs, err := sys.FilePair(unix.SOCK_DGRAM, "kernel", "helper")
	if err != nil {
		return 0, err
	}
	defer mine.Close()
	fc, err := net.FileConn(mine)
	if err != nil {
		theirs.Close()
		return 0, err
	}
	defer fc.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, path, "4", "tuntap", "up", "10.9.0.1")
	cmd.Stdout = theirs
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		theirs.Close()
		return 0, err
	}
	theirs.Close()
	fc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, rerr := fc.(*net.UnixConn).ReadMsgUnix(buf, oob)
	werr := cmd.Wait()
	d := time.Since(t0)
	if rerr != nil {
		return 0, rerr
	}
	if werr != nil {
		return 0, werr
	}
	fds, err := fdpass.ParseRights(oob[:oobn])
	if err != nil || len(fds) == 0 {
		return 0, fmt.Errorf("%s: reply without fd", path)
	}
	for _, fd := range fds {
		unix.Close(fd) // the tap goes away with it
	}
	return float64(d.Microseconds()) / 1000, nil
}
