package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// sysrqInit starts a long-running child (for e and t) and reports, every
// 100 ms, whether the root is still writable (for u).
const sysrqInit = `sleep 1000 &
echo READY
ro=0
while true; do
  if ! touch /rw-probe 2>/dev/null && [ $ro = 0 ]; then echo ROOT-IS-READ-ONLY; ro=1; fi
  sleep 0.1
done`

// TestIntegrationLinuxMconsoleSysrq: sysrq and stack through Debian's
// uml_mconsole. The replies scripts compare (help, loglevels, sync, error
// texts) are checked against Debian's linux.uml booted in the same test;
// the letters that act are checked by their effect on our guest.
func TestIntegrationLinuxMconsoleSysrq(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	run := debianMconsole(t)
	same := []string{"sysrq", "sysrq h", "sysrq z", "sysrq s", "sysrq 5", "stack", "stack abc", "stack 0", "stack 999"}

	real := realReplies(t, "sq-real", same)

	g, sock := bootForMconsole(t, sysrqInit, "sq")
	sameReplies(t, run, sock, same, real)
	if err := g.WaitOutput("sysrq: Emergency Sync\r\n", 5*time.Second); err != nil {
		t.Errorf("sysrq s not logged on the console: %v", err)
	}

	if out := run(sock, "sysrq t"); !strings.HasPrefix(out, "OK sysrq: Show State\n") ||
		!strings.Contains(out, "task:sleep") || !strings.Contains(out, " pid:1 ") {
		t.Errorf("sysrq t = %q; want the task list with init and sleep", out)
	}
	if out := run(sock, "stack 1"); !strings.HasPrefix(out, "OK Stack:\n") || !strings.Contains(out, "Call Trace:\n") {
		t.Errorf("stack 1 = %q", out)
	}
	if out := run(sock, "sysrq u"); out != "OK sysrq: Emergency Remount R/O\n\n" {
		t.Errorf("sysrq u = %q", out)
	}
	if err := g.WaitOutput("ROOT-IS-READ-ONLY", 5*time.Second); err != nil {
		t.Errorf("root still writable after sysrq u: %v", err)
	}
	if out := run(sock, "sysrq e"); out != "OK sysrq: Terminate All Tasks\n\n" {
		t.Errorf("sysrq e = %q", out)
	}
	if err := testutil.WaitFor(5*time.Second, func() bool {
		return !strings.Contains(run(sock, "sysrq t"), "task:sleep ")
	}); err != nil {
		t.Errorf("sleep still there after sysrq e: %v", err)
	}
	if out := run(sock, "sysrq c"); out != "OK sysrq: Trigger a crash\n\n" {
		t.Errorf("sysrq c = %q", out)
	}
	code, err := g.Wait(bootTimeout)
	if err != nil || code != 134 {
		t.Errorf("exit after sysrq c = %d, %v; want 134", code, err)
	}
	if !strings.Contains(g.Output(), "Kernel panic - not syncing: sysrq triggered crash") {
		t.Errorf("no panic line after sysrq c")
	}
}

// realMconsoleSocket waits for linux.uml's mconsole line and returns the
// socket path it names.
func realMconsoleSocket(t *testing.T, g *harness.Guest, umid string) string {
	t.Helper()
	if err := g.WaitOutput("mconsole (version 2) initialized on ", bootTimeout); err != nil {
		t.Fatal(err)
	}
	out := g.Output()
	i := strings.Index(out, "mconsole (version 2) initialized on ")
	line := out[i+len("mconsole (version 2) initialized on "):]
	if j := strings.IndexAny(line, "\r\n"); j >= 0 {
		line = line[:j]
	}
	if !strings.HasSuffix(line, umid+"/mconsole") {
		t.Fatalf("linux.uml mconsole at %q, want .../%s/mconsole", line, umid)
	}
	return line
}
