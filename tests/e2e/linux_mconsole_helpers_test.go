package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// debianMconsole returns a function that sends one command through
// Debian's uml_mconsole to the socket sock and returns its output.
func debianMconsole(t *testing.T) func(sock, cmd string) string {
	t.Helper()
	mc := testutil.Peer(t, "uml_mconsole", "uml-utilities")
	return func(sock, cmd string) string {
		out, _ := exec.Command(mc, sock, cmd).Output()
		return string(out)
	}
}

// realReplies boots Debian's linux.uml (extra command-line words added),
// sends it each request through Debian's uml_mconsole, halts it and
// returns the replies by request.
func realReplies(t *testing.T, umid string, reqs []string, extra ...string) map[string]string {
	t.Helper()
	run := debianMconsole(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: "echo READY; exec sleep 1000"})
	g := harness.BootRealUML(t, img, append([]string{"umid=" + umid}, extra...)...)
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	sock := realMconsoleSocket(t, g, umid)
	replies := map[string]string{}
	for _, r := range reqs {
		replies[r] = run(sock, r)
	}
	run(sock, "halt")
	g.Wait(bootTimeout)
	return replies
}

// guestShell types commands into the console shell of a guest.
type guestShell struct {
	t     *testing.T
	g     *harness.Guest
	marks int
}

// run types cmd, waits until it has finished and, if want is not empty,
// checks that the console shows it.
func (s *guestShell) run(cmd, want string) {
	s.t.Helper()
	s.marks++
	fmt.Fprintf(s.g.Stdin(), "%s; echo SH%d\"\"DONE\n", cmd, s.marks)
	if err := harness.WaitCount(s.g, fmt.Sprintf("SH%dDONE", s.marks), 1, 30*time.Second); err != nil {
		s.t.Fatalf("%s: %v\n%s", cmd, err, s.g.Output())
	}
	if want != "" && !strings.Contains(s.g.Output(), want) {
		s.t.Errorf("%s: output lacks %q", cmd, want)
	}
}

// bootForMconsole boots our linux on a busybox image running init (which
// must print READY) as machine umid with extra command-line words, and
// returns the guest and its mconsole socket.
func bootForMconsole(t *testing.T, init, umid string, extra ...string) (*harness.Guest, string) {
	t.Helper()
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: init})
	umlDir := t.TempDir()
	argv := append([]string{harness.Bin(t, "linux"), "ubd0=" + img, "init=/init", "uml_dir=" + umlDir, "umid=" + umid}, extra...)
	g := harness.Start(t, nil, argv...)
	if err := g.WaitOutput("READY", bootTimeout); err != nil {
		t.Fatal(err)
	}
	return g, filepath.Join(umlDir, umid, "mconsole")
}

// sameReplies sends each request to our machine's socket and fails t
// where the reply differs from linux.uml's in real.
func sameReplies(t *testing.T, run func(sock, cmd string) string, sock string, reqs []string, real map[string]string) {
	t.Helper()
	for _, req := range reqs {
		if got := run(sock, req); got != real[req] {
			t.Errorf("%s: ours %q, linux.uml %q", req, got, real[req])
		}
	}
}
