// Package packaging tests umlkit's distro packages (issue #9; docs/packaging.md):
// it builds the .deb and .rpm with packaging/build.sh, installs the .deb into a
// clean Debian 12 chroot made with debootstrap (cached as a tarball between
// runs) and checks the .rpm with the rpm tools from Debian's rpm package.
package packaging

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
)

// Debian 12 chroot cache. CacheDirEnv overrides the directory; the tarball's
// name carries everything that changes its contents.
const (
	CacheDirEnv     = "UMLKIT_TEST_CACHE"
	defaultCacheDir = "/var/cache/umlkit-test"
	suite           = "bookworm"
	includes        = "adduser,systemd-sysv,udev,iproute2,procps,dbus" // postinst needs adduser; systemd-analyze verify needs systemd; the rest make the stock image of issue 16
	// MirrorEnv overrides the Debian mirror debootstrap uses (default: the
	// host's apt sources).
	MirrorEnv = "UMLKIT_DEBIAN_MIRROR"
	// debootstrapBudget bounds a cold cache fill (measured: 1.5-2.6 min).
	debootstrapBudget = 10 * time.Minute
)

func cacheDir() string {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return d
	}
	return defaultCacheDir
}

// mirror returns the Debian mirror apt on this host uses for bookworm ("" if
// none is configured).
func mirror() string {
	if m := os.Getenv(MirrorEnv); m != "" {
		return m
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		if m := mirrorFromDeb822(f); m != "" {
			return m
		}
	}
	files, _ = filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append([]string{"/etc/apt/sources.list"}, files...) {
		if m := mirrorFromList(f); m != "" {
			return m
		}
	}
	return ""
}

// mirrorFromDeb822 reads a deb822 .sources file: the first stanza of type deb
// whose Suites include bookworm itself.
func mirrorFromDeb822(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, stanza := range strings.Split(string(b), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !hasWord(fields["types"], "deb") || !hasWord(fields["suites"], suite) {
			continue
		}
		if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
			return uris[0]
		}
	}
	return ""
}

// mirrorFromList reads a one-line-style sources.list.
func mirrorFromList(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		// deb [options] URI SUITE COMPONENTS...
		if len(w) < 3 || w[0] != "deb" {
			continue
		}
		w = w[1:]
		if strings.HasPrefix(w[0], "[") {
			for len(w) > 0 && !strings.HasSuffix(w[0], "]") {
				w = w[1:]
			}
			if len(w) > 0 {
				w = w[1:]
			}
		}
		if len(w) >= 2 && w[1] == suite {
			return w[0]
		}
	}
	return ""
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// Chroot returns a fresh Debian 12 minbase root (plus adduser and systemd)
// under a temporary directory, removed at cleanup. The first call on a
// machine runs debootstrap and stores a tarball in the cache directory; later
// calls (and later runs) only unpack it. Concurrent test processes serialise
// on a lock file there.
func Chroot(t *testing.T) string {
	t.Helper()
	return ChrootWith(t, "")
}

// ChrootWith is Chroot with the Debian packages extra (comma-separated)
// installed too; each set of packages has a tarball of its own in the
// cache.
func ChrootWith(t *testing.T, extra string) string {
	t.Helper()
	testutil.RequireRoot(t)
	pkgs := includes
	if extra != "" {
		pkgs += "," + extra
	}
	for _, tool := range []string{"debootstrap", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Skip(t, "%s not installed (apt-get install %s)", tool, tool)
		}
	}
	dir := cacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("cache directory: %v", err)
	}
	tarball := filepath.Join(dir, fmt.Sprintf("debian-%s-minbase+%s.tar", suite, strings.ReplaceAll(pkgs, ",", "+")))
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if _, err := os.Stat(tarball); err != nil {
		fillCache(t, tarball, pkgs)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("tar", "--numeric-owner", "-xpf", tarball, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", tarball, err, out)
	}
	t.Logf("chroot unpacked from %s in %v", tarball, time.Since(start).Round(time.Millisecond))
	// Services are never started inside the chroot (Debian's policy-rc.d
	// convention); the maintainer scripts must cope with that.
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// fillCache runs debootstrap (with the packages pkgs) into a scratch
// directory and stores the result.
func fillCache(t *testing.T, tarball, pkgs string) {
	t.Helper()
	scratch, err := os.MkdirTemp(filepath.Dir(tarball), ".debootstrap-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	target := filepath.Join(scratch, "root")
	m := mirror()
	if m == "" {
		testutil.Skip(t, "no bookworm mirror in /etc/apt/sources.list*; set %s", MirrorEnv)
	}
	start := time.Now()
	cmd := exec.Command("timeout", fmt.Sprint(int(debootstrapBudget.Seconds())),
		"debootstrap", "--variant=minbase", "--include="+pkgs, suite, target, m)
	if out, err := cmd.CombinedOutput(); err != nil {
		tail := string(out)
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		t.Fatalf("debootstrap %s from %s (budget %v): %v\n%s", suite, m, debootstrapBudget, err, tail)
	}
	t.Logf("debootstrap %s from %s took %v", suite, m, time.Since(start).Round(time.Second))
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "--numeric-owner", "-cf", tmp, "-C", target, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("tar chroot: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
}

// inChroot runs argv inside root with a clean environment and returns its
// combined output.
func inChroot(root string, argv ...string) (string, error) {
	cmd := exec.Command("chroot", append([]string{root}, argv...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
