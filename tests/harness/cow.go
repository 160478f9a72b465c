package harness

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"
)

// RunIn runs the program at path with argv[0] set to argv0 (so usage texts
// that print argv[0] compare equal between ours and the real tool) in dir,
// and returns its output and exit status. A crash (signal) reports code 128+sig.
func RunIn(t testing.TB, dir, path, argv0 string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Args[0] = argv0
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
		if r.Code < 0 {
			r.Code = 139
		}
	case err != nil:
		t.Fatalf("run %s %q: %v", path, args, err)
	}
	return r
}
