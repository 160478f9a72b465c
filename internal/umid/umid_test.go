package umid

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestClaimFreshStaleLive(t *testing.T) {
	dir := t.TempDir()
	d, err := Claim(dir, "vm1", 4242424)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "vm1", "pid"))
	if string(b) != "4242424\n" {
		t.Errorf("pid file = %q", b)
	}
	// pid 4242424 does not exist: stale, taken over.
	os.WriteFile(filepath.Join(d.Path, "mconsole"), nil, 0o600)
	d2, err := Claim(dir, "vm1", os.Getpid())
	if err != nil {
		t.Fatalf("stale claim: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d2.Path, "mconsole")); !os.IsNotExist(err) {
		t.Errorf("stale files not removed")
	}
	// now live (our own pid)
	_, err = Claim(dir, "vm1", 1)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Claim of a live umid = %v; want ErrInUse", err)
	}
	want := `umid "vm1" is already in use by pid ` + strconv.Itoa(os.Getpid())
	if err.Error() != want {
		t.Errorf("error = %q; want %q", err, want)
	}
	if err := d2.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d2.Path); !os.IsNotExist(err) {
		t.Errorf("Release left %s", d2.Path)
	}
}

func TestRandomAndGarbage(t *testing.T) {
	dir := t.TempDir()
	d, err := Claim(dir, "", 1)
	if err != nil || len(d.Umid) != 6 {
		t.Fatalf("random claim = %+v, %v", d, err)
	}
	os.Mkdir(filepath.Join(dir, "g"), 0o777)
	os.WriteFile(filepath.Join(dir, "g", "pid"), []byte("garbage"), 0o644)
	if _, err := Claim(dir, "g", 1); err != nil {
		t.Errorf("garbage pid file should count as stale: %v", err)
	}
}

// TestSweep: a dead machine's directory goes, a live one's, one without a
// pid number and a plain file stay.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, pid string) {
		os.Mkdir(filepath.Join(dir, name), 0o777)
		if pid != "" {
			os.WriteFile(filepath.Join(dir, name, "pid"), []byte(pid), 0o644)
		}
	}
	mk("dead", "4242424\n")
	os.WriteFile(filepath.Join(dir, "dead", "mconsole"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "dead", ".kernel"), 0o700)
	mk("live", strconv.Itoa(os.Getpid())+"\n")
	mk("nopid", "")
	mk("garbage", "x")
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	got := Sweep(dir)
	if len(got) != 1 || got[0].Path != filepath.Join(dir, "dead") || got[0].Pid != 4242424 || got[0].Err != nil {
		t.Fatalf("Sweep = %+v; want the dead one removed", got)
	}
	for _, n := range []string{"live", "nopid", "garbage", "file"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "dead")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead: %v; want it gone", err)
	}
}
