package testutil

import (
	"os"
	"testing"
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
