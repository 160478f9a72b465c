// Package testutil provides the probes privileged and interop tests use to
// skip with a specific reason (not root, user namespaces disabled and by which
// knob, /dev/net/tun or /dev/fuse unusable, a Debian peer not installed), and
// small helpers shared by tests (network namespaces, goroutine leak checks).
//
// With UMLKIT_REQUIRE_PRIV=1 in the environment every such skip becomes a
// failure, so CI can never go green by skipping.
package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/hostcheck"
)

// RequirePrivEnv is the variable that turns skips into failures.
const RequirePrivEnv = "UMLKIT_REQUIRE_PRIV"

// Strict reports whether skips must fail (UMLKIT_REQUIRE_PRIV=1).
func Strict() bool { return os.Getenv(RequirePrivEnv) == "1" }

// Skip skips t with reason, or fails it when Strict.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s=1 but the test cannot run: %s", RequirePrivEnv, msg)
	}
	t.Skip(msg)
}

// RequireRoot skips unless running as uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (running as uid %d)", os.Geteuid())
	}
}

// UserNSProblem returns "" when this process can create a user namespace,
// or a sentence naming the knob that stops it.
func UserNSProblem() string {
	// The knobs are the same ones linux checks at boot (one source).
	if p := hostcheck.UserNS(); p != nil {
		return p.Error()
	}
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("creating a user namespace failed: %v", err)
	}
	return ""
}

// RequireUserNS skips unless a user namespace can be created.
func RequireUserNS(t testing.TB) {
	t.Helper()
	if p := UserNSProblem(); p != "" {
		Skip(t, "%s", p)
	}
}

// DevProblem returns "" when path (a device node such as /dev/fuse) opens
// read-write for cred, or a sentence saying why it does not. A nil cred
// probes this process. The probe for another user runs a child with that
// user's credentials (no supplementary groups, as TestUser commands run):
// root opens a 0600 node whatever its mode, so a root test process probing
// for itself says nothing about the ordinary user it runs binaries as.
func DevProblem(path string, cred *syscall.Credential) string {
	if cred == nil {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Sprintf("%s not usable: %v", path, err)
		}
		f.Close()
		return ""
	}
	cmd := exec.Command("/bin/sh", "-c", `exec 3<>"$1"`, "sh", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		st, _ := os.Stat(path)
		mode := "missing"
		if st != nil {
			mode = fmt.Sprintf("mode %04o", st.Mode().Perm())
		}
		return fmt.Sprintf("%s (%s) not usable by uid %d: %s (make it 0666 as distributions ship it: chmod 0666 %s)",
			path, mode, cred.Uid, bytes.TrimSpace(out), path)
	}
	return ""
}

func requireDev(t testing.TB, path string, cred *syscall.Credential) {
	t.Helper()
	if p := DevProblem(path, cred); p != "" {
		Skip(t, "%s", p)
	}
}

func userCred(uid, gid uint32) *syscall.Credential {
	return &syscall.Credential{Uid: uid, Gid: gid}
}

// RequireTUN skips unless /dev/net/tun opens read-write.
func RequireTUN(t testing.TB) { t.Helper(); requireDev(t, "/dev/net/tun", nil) }

// RequireFUSE skips unless /dev/fuse opens read-write.
func RequireFUSE(t testing.TB) { t.Helper(); requireDev(t, "/dev/fuse", nil) }

// RequireTUNAs skips unless /dev/net/tun opens read-write for uid:gid, the
// user a test runs binaries as.
func RequireTUNAs(t testing.TB, uid, gid uint32) {
	t.Helper()
	requireDev(t, "/dev/net/tun", userCred(uid, gid))
}

// RequireFUSEAs skips unless /dev/fuse opens read-write for uid:gid, the
// user a test runs binaries as (an ordinary user's linux mounts its root
// image with fuse2fs).
func RequireFUSEAs(t testing.TB, uid, gid uint32) {
	t.Helper()
	requireDev(t, "/dev/fuse", userCred(uid, gid))
}

// Peer locates an installed Debian peer binary by name (searching PATH and
// /usr/lib/uml) and returns its path, or skips naming the package to install.
func Peer(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/lib/uml", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	Skip(t, "Debian peer %s not installed (apt-get install %s)", name, pkg)
	return ""
}

// NetNS creates a network namespace for the test with `ip netns add` and
// deletes it at cleanup. It needs root. The name is returned; run commands in
// it with `ip netns exec NAME ...` (see InNetNS).
func NetNS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	ip := Peer(t, "ip", "iproute2")
	name := fmt.Sprintf("umlkit-t%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return name
}

// InNetNS returns a command that runs argv inside network namespace ns.
func InNetNS(ns string, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
}

// LeakCheck records the goroutine count and, at cleanup, fails if more
// goroutines are alive after a grace period.
func LeakCheck(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// ErrTimeout is returned by WaitFor when the condition never held.
var ErrTimeout = errors.New("timed out")

// WaitFor polls cond every 10ms until it returns true or d passes.
func WaitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// SyncBuffer is a goroutine-safe byte buffer for a child's or a relay's
// output that a test reads while it is still being written.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns a copy of what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
