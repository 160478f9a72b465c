package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCommitReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old contents"), 0o600)
	f, err := New(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Cancel()
	if filepath.Dir(f.TempPath()) != dir {
		t.Errorf("temp file %s not in %s", f.TempPath(), dir)
	}
	f.Write([]byte("new"))
	if b, _ := os.ReadFile(p); string(b) != "old contents" {
		t.Errorf("final file changed before Commit: %q", b)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("after Commit: %q; want %q", b, "new")
	}
	if err := f.Cancel(); err != nil {
		t.Errorf("Cancel after Commit = %v; want nil", err)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v; want only out", got)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm()&^0o022 != 0o644&^0o022 {
		t.Errorf("mode %v; want 0644 minus umask", st.Mode())
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := New(filepath.Join(dir, "out"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	if err := f.Cancel(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Errorf("after Cancel directory holds %v", got)
	}
	if err := f.Commit(); err == nil {
		t.Error("Commit after Cancel succeeded")
	}
}

func TestCommitNoReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	f, _ := New(p, 0o644)
	f.Write([]byte("first"))
	if err := f.CommitNoReplace(); err != nil {
		t.Fatal(err)
	}
	g, _ := New(p, 0o644)
	g.Write([]byte("second"))
	if err := g.CommitNoReplace(); !errors.Is(err, os.ErrExist) {
		t.Errorf("CommitNoReplace over an existing file = %v; want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "first" {
		t.Errorf("existing file changed: %q", b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v; want only out", got)
	}
}

func TestNewInMissingDir(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "no", "out"), 0o644); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New in a missing directory = %v; want ErrNotExist", err)
	}
}
