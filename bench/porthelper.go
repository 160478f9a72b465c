package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/creack/pty"
)

// porthelper: xterm-mode hand-over latency — start port-helper -uml-socket S
// on a pty and time until its pid+fd datagram arrives, ours vs Debian's.
func init() {
	run := func(path func(*Env) string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			const n = 20
			sock := filepath.Join(e.Dir, "xterm-pipeBENCH")
			os.Remove(sock)
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			defer os.Remove(sock)
			ptm, pts, err := pty.Open()
			if err != nil {
				return nil, err
			}
			defer ptm.Close()
			defer pts.Close()
			var total float64
			buf, oob := make([]byte, 4), make([]byte, 64)
			for i := 0; i < n; i++ {
				cmd := exec.Command(path(e), "-uml-socket", sock)
				cmd.Stdin = pts
				t0 := time.Now()
				if err := cmd.Start(); err != nil {
					return nil, err
				}
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _, _, _, err := conn.ReadMsgUnix(buf, oob)
				total += float64(time.Since(t0).Microseconds()) / 1000
				cmd.Process.Kill()
				cmd.Wait()
				if err != nil {
					return nil, fmt.Errorf("no hand-over from %s: %w", path(e), err)
				}
			}
			return []Metric{{"port-helper -uml-socket hand-over", total / n, "ms"}}, nil
		}
	}
	register(&Benchmark{
		Name: "porthelper",
		Doc:  "port-helper -uml-socket: process start to terminal fd received, ours vs Debian's",
		Variants: []Variant{
			{Name: "ours", Run: run(func(e *Env) string { return e.Ours("port-helper") })},
			{Name: "real", Run: run(func(*Env) string { return "/usr/lib/uml/port-helper" })},
		},
	})
}
