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

// handOvers times the hand-over of port-helper at path, averaged over 20
// runs on one socket and pty.
func handOvers(e *Env, path string) ([]Metric, error) {
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
	for i := 0; i < n; i++ {
		ms, err := handOver(conn, sock, pts, path)
		total += ms
		if err != nil {
			return nil, err
		}
	}
	return []Metric{{"port-helper -uml-socket hand-over", total / n, "ms"}}, nil
}

// handOver starts port-helper at path on the terminal pts, waits (at most
// 10 s) for its datagram on conn (listening at sock), and returns the time
// that took.
func handOver(conn *net.UnixConn, sock string, pts *os.File, path string) (float64, error) {
	buf, oob := make([]byte, 4), make([]byte, 64)
	cmd := exec.Command(path, "-uml-socket", sock)
	cmd.Stdin = pts
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, _, _, err := conn.ReadMsgUnix(buf, oob)
	ms := float64(time.Since(t0).Microseconds()) / 1000
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		return ms, fmt.Errorf("no hand-over from %s: %w", path, err)
	}
	return ms, nil
}
