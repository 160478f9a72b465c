package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func newDocsCmd(use string) *cobra.Command {
	c := New(use, "do a test thing")
	c.Flags().Bool("hub", false, "be a hub")
	c.Flags().StringP("unix", "u", "/tmp/uml.ctl", "control socket")
	c.RunE = func(*cobra.Command, []string) error { panic("RunE must not run under gendocs") }
	return c
}

func TestGenDocs(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	tests := []struct {
		use, sec string
	}{
		{"uml_switch [-hub]", "1"},
		{"tunctl [-t dev]", "8"},
	}
	for _, tt := range tests {
		name := strings.Fields(tt.use)[0]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := GenDocs(newDocsCmd(tt.use), dir); err != nil {
				t.Fatalf("GenDocs: %v", err)
			}
			man := read(t, filepath.Join(dir, "man"+tt.sec, name+"."+tt.sec))
			for _, want := range []string{
				`.TH "` + name + `" "` + tt.sec + `" "Nov 2023" "umlkit `,
				`do a test thing`, `--hub`, `control socket`, `--version`,
			} {
				if !strings.Contains(man, want) {
					t.Errorf("man page lacks %q:\n%s", want, man)
				}
			}
			if strings.Contains(man, "Auto generated") {
				t.Errorf("man page carries cobra's auto-generated tag")
			}
			checks := map[string]string{
				filepath.Join("bash", name):         "__start_" + name,
				filepath.Join("zsh", "_"+name):      "#compdef " + name,
				filepath.Join("fish", name+".fish"): "complete -c " + name,
			}
			for f, want := range checks {
				if got := read(t, filepath.Join(dir, f)); !strings.Contains(got, want) {
					t.Errorf("%s lacks %q", f, want)
				}
			}
			if bash, err := exec.LookPath("bash"); err == nil {
				if out, err := exec.Command(bash, "-n", filepath.Join(dir, "bash", name)).CombinedOutput(); err != nil {
					t.Errorf("bash -n %s: %v\n%s", name, err, out)
				}
			}
			// Nothing but the four files (no temp files left over).
			var n int
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					n++
				}
				return nil
			})
			if n != 4 {
				t.Errorf("GenDocs wrote %d files; want 4", n)
			}
		})
	}
}

func TestRunGenDocsEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(GenDocsEnv, dir)
	if code := Run(newDocsCmd("uml_moo COW"), []string{"-unix", "x", "arg"}); code != 0 {
		t.Fatalf("Run under %s = %d; want 0", GenDocsEnv, code)
	}
	if _, err := os.Stat(filepath.Join(dir, "man1", "uml_moo.1")); err != nil {
		t.Errorf("man page not written: %v", err)
	}
}

func TestGenDocsError(t *testing.T) {
	// A regular file where the output directory should be.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := genDocsMain(newDocsCmd("x"), f, &stderr); code != 1 {
		t.Errorf("genDocsMain(file) = %d; want 1", code)
	}
	if got := stderr.String(); !strings.HasPrefix(got, "x: gendocs: ") || strings.Count(got, "\n") != 1 {
		t.Errorf("stderr = %q; want one line starting x: gendocs: ", got)
	}
	if err := GenDocs(newDocsCmd("x"), ""); err == nil {
		t.Error("GenDocs with empty dir succeeded")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
