package harness

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
	uml := RealUML(t)
	umlDir := t.TempDir()
	argv := []string{"ip", "netns", "exec", ns, uml, "ubd0=" + image, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null",
		"init=/init", "uml_dir=" + umlDir}
	argv = append(argv, extra...)
	return Start(t, append([]string{"TMPDIR=" + umlDir}, env...), argv...)
}
