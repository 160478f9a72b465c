package harness

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
)

// Result is the outcome of one command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// RunInNetNS runs argv inside network namespace ns (`ip netns exec`) with
// env added to the environment and returns its output and exit status.
func RunInNetNS(t testing.TB, ns string, env []string, argv ...string) Result {
	t.Helper()
	cmd := testutil.InNetNS(ns, argv...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %q in netns %s: %v", argv, ns, err)
	}
	return r
}

// PathDir returns a fresh directory holding a symlink name -> target, for
// putting a binary first in PATH under its plain name (so argv[0] is the
// bare name, as when a user or UML runs it from PATH).
func PathDir(t testing.TB, name, target string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// BootRealUMLInNetNS is BootRealUML run inside network namespace ns via
// `ip netns exec`, with env added (e.g. PATH=<dir with our uml_net>:...).
func BootRealUMLInNetNS(t testing.TB, ns string, env []string, image string, extra ...string) *Guest {
	t.Helper()
	return BootRealUMLInNetNSAs(t, ns, 0, nil, env, image, extra...)
}

// BootRealUMLInNetNSAs is BootRealUMLInNetNS with the kernel running as uid
// (and gid uid, supplementary groups groups) through setpriv when uid != 0.
// The image is chowned to uid and uml_dir/TMPDIR is a fresh directory the
// user owns (removed at cleanup).
func BootRealUMLInNetNSAs(t testing.TB, ns string, uid int, groups []int, env []string, image string, extra ...string) *Guest {
	t.Helper()
	uml := RealUML(t)
	var prefix []string
	umlDir := t.TempDir()
	if uid != 0 {
		setpriv := testutil.Peer(t, "setpriv", "util-linux")
		gs := make([]string, len(groups))
		for i, g := range groups {
			gs[i] = strconv.Itoa(g)
		}
		prefix = []string{setpriv, "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid), "--groups=" + strings.Join(append(gs, strconv.Itoa(uid)), ","), "--"}
		d, err := os.MkdirTemp("", "umlkit-umldir-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chown(d, uid, uid); err != nil {
			t.Fatal(err)
		}
		umlDir = d
		if err := os.Chown(image, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	argv := append([]string{"ip", "netns", "exec", ns}, prefix...)
	argv = append(argv, uml, "ubd0="+image, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null",
		"init=/init", "uml_dir="+umlDir)
	argv = append(argv, extra...)
	return Start(t, append([]string{"TMPDIR=" + umlDir}, env...), argv...)
}
