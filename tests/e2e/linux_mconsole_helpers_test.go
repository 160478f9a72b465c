package e2e

import (
	"fmt"
	"os/exec"
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
