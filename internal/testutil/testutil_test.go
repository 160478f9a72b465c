package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStrictSkipFails(t *testing.T) {
	t.Setenv(RequirePrivEnv, "1")
	ft := &fakeTB{TB: t}
	func() {
		defer func() { recover() }()
		Skip(ft, "no %s", "thing")
	}()
	if !ft.fatal || ft.skipped {
		t.Errorf("Skip under %s=1: fatal=%v skipped=%v; want fatal only", RequirePrivEnv, ft.fatal, ft.skipped)
	}
	t.Setenv(RequirePrivEnv, "")
	ft = &fakeTB{TB: t}
	func() {
		defer func() { recover() }()
		Skip(ft, "no thing")
	}()
	if ft.fatal || !ft.skipped || ft.msg != "no thing" {
		t.Errorf("Skip: fatal=%v skipped=%v msg=%q; want a skip with the reason", ft.fatal, ft.skipped, ft.msg)
	}
}

type fakeTB struct {
	testing.TB
	fatal, skipped bool
	msg            string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = true
	panic("fatal")
}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = true
	if len(args) == 1 {
		f.msg, _ = args[0].(string)
	}
	panic("skip")
}

func TestUserNSProblemIsASentence(t *testing.T) {
	p := UserNSProblem()
	if os.Geteuid() == 0 && p != "" {
		t.Logf("user namespaces unavailable even to root: %s", p)
	}
	if p != "" && len(p) < 10 {
		t.Errorf("UserNSProblem() = %q; want a sentence naming the knob", p)
	}
}

// TestDevProblemAsUser: a node only root may open is usable for this
// process when it is root but not for an ordinary uid, and the reason names
// the node, its mode and the fix.
func TestDevProblemAsUser(t *testing.T) {
	RequireRoot(t)
	dir, err := os.MkdirTemp("", "devprobe-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "null")
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(node, 0o600); err != nil {
		t.Fatal(err)
	}
	if p := DevProblem(node, nil); p != "" {
		t.Errorf("DevProblem(%s, root) = %q; want usable", node, p)
	}
	p := DevProblem(node, &syscall.Credential{Uid: 65534, Gid: 65534})
	for _, want := range []string{node, "mode 0600", "uid 65534", "chmod 0666 " + node} {
		if !strings.Contains(p, want) {
			t.Errorf("DevProblem(%s, uid 65534) = %q; want it to name %q", node, p, want)
		}
	}
	if err := os.Chmod(node, 0o666); err != nil {
		t.Fatal(err)
	}
	if p := DevProblem(node, &syscall.Credential{Uid: 65534, Gid: 65534}); p != "" {
		t.Errorf("DevProblem(%s 0666, uid 65534) = %q; want usable", node, p)
	}
}
