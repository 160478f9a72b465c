package harness

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
)

// BootLinux boots our linux on disk (image file or directory) with
// init=/init, con0=fd:0,fd:1 and a fresh uml_dir, plus extra words.
func BootLinux(t testing.TB, disk string, extra ...string) *Guest {
	t.Helper()
	bin := Bin(t, "linux")
	umlDir := t.TempDir()
	argv := append([]string{bin, "ubd0=" + disk, "init=/init", "uml_dir=" + umlDir}, extra...)
	return Start(t, nil, argv...)
}

// TestUser is an unprivileged account for tests of the non-root paths.
type TestUser struct {
	Name     string
	UID, GID uint32
	Home     string
}

// UnprivilegedUser returns an ordinary user to run binaries as, creating
// "umlkittest" when running as root and it does not exist yet. It skips when
// not root (the caller is then already unprivileged: use the current user).
func UnprivilegedUser(t testing.TB) *TestUser {
	t.Helper()
	testutil.RequireRoot(t)
	const name = "umlkittest"
	u, err := user.Lookup(name)
	if err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v: %s", name, err, out)
		}
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &TestUser{Name: name, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
}

// Dir makes a fresh directory owned by the user under the system temp dir.
func (u *TestUser) Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "umlkit-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	return d
}

// Chown gives path to the user.
func (u *TestUser) Chown(t testing.TB, path string) {
	t.Helper()
	if err := os.Chown(path, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
}

// Command returns a command that runs as the user, with HOME set.
func (u *TestUser) Command(argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	cmd.Env = []string{"HOME=" + u.Home, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "USER=" + u.Name}
	return cmd
}

// StartAs is Start running as u.
func StartAs(t testing.TB, u *TestUser, argv ...string) *Guest {
	t.Helper()
	return startCmd(t, u.Command(argv...))
}

// Pid returns the process id of the guest's host process.
func (g *Guest) Pid() int { return g.Cmd.Process.Pid }

// String names the guest for messages.
func (g *Guest) String() string { return fmt.Sprintf("%s[%d]", g.Cmd.Path, g.Cmd.Process.Pid) }

// WaitCount waits until s appears at least n times in the output.
func WaitCount(g *Guest, s string, n int, d time.Duration) error {
	if err := testutil.WaitFor(d, func() bool { return strings.Count(g.Output(), s) >= n }); err != nil {
		return fmt.Errorf("waiting %v for %d × %q: %w", d, n, s, err)
	}
	return nil
}
