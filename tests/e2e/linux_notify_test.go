package e2e

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationLinuxMconsoleNotify: mconsole=notify:SOCK gets the SOCKET
// notification (the mconsole socket's path, NUL-terminated) once the
// mconsole is up and the PANIC one when init exits — the same datagrams,
// byte for byte, as Debian's linux.uml sends for the same events.
func TestIntegrationLinuxMconsoleNotify(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	recv := func(t *testing.T, boot func(sock string) *harness.Guest) (first, panic []byte, g *harness.Guest) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "notify")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		g = boot(sock)
		buf := make([]byte, 1024)
		var got [][]byte
		c.SetReadDeadline(time.Now().Add(bootTimeout))
		for len(got) < 2 {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("notifications so far %q: %v\n%s", got, err, g.Output())
			}
			got = append(got, append([]byte(nil), buf[:n]...))
		}
		return got[0], got[1], g
	}
	const init = "echo BYE; exit 3"
	umlDir := t.TempDir()
	ourSock, ourPanic, g := recv(t, func(sock string) *harness.Guest {
		img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: init})
		return harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "init=/init", "uml_dir="+umlDir, "umid=nt",
			"mconsole=notify:"+sock)
	})
	g.Wait(bootTimeout)
	realSock, realPanic, rg := recv(t, func(sock string) *harness.Guest {
		img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: init})
		return harness.BootRealUML(t, img, "umid=nt-real", "mconsole=notify:"+sock)
	})
	rg.Cmd.Process.Kill()
	rg.Wait(10 * time.Second)

	var n mconsole.Notify
	if err := n.UnmarshalBinary(ourSock); err != nil || n.Type != mconsole.NotifySocket ||
		string(n.Data) != filepath.Join(umlDir, "nt", "mconsole")+"\x00" {
		t.Errorf("first notification: %+v, %v", n, err)
	}
	var r mconsole.Notify
	if err := r.UnmarshalBinary(realSock); err != nil || r.Type != mconsole.NotifySocket {
		t.Errorf("linux.uml's first notification: %+v, %v", r, err)
	}
	if len(ourSock) < 16 || len(realSock) < 16 || string(ourSock[:8]) != string(realSock[:8]) {
		t.Errorf("SOCKET header: ours % x, linux.uml % x", ourSock[:min(16, len(ourSock))], realSock[:min(16, len(realSock))])
	}
	if string(ourPanic) != string(realPanic) {
		t.Errorf("PANIC notification: ours %q, linux.uml %q", ourPanic, realPanic)
	}
}
