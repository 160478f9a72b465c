package guest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestInitEnv(t *testing.T) {
	for _, tt := range []struct {
		cmdline, want []string
	}{
		{nil, []string{"HOME=/", "TERM=linux", "container=" + ContainerName}},
		{[]string{"LANG=C"}, []string{"HOME=/", "TERM=linux", "container=" + ContainerName, "LANG=C"}},
	} {
		if got := initEnv(tt.cmdline); !slices.Equal(got, tt.want) {
			t.Errorf("initEnv(%q) = %q; want %q", tt.cmdline, got, tt.want)
		}
	}
}

// TestSystemdInit: an init whose links end at a file named systemd is
// systemd; busybox's init, a script and a missing file are not.
func TestSystemdInit(t *testing.T) {
	d := t.TempDir()
	mk := func(p string) {
		os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755)
		os.WriteFile(filepath.Join(d, p), []byte("x"), 0o755)
	}
	mk("lib/systemd/systemd")
	mk("bin/busybox")
	mk("init.sh")
	os.Mkdir(filepath.Join(d, "sbin"), 0o755)
	os.Symlink("../lib/systemd/systemd", filepath.Join(d, "sbin/init"))
	os.Symlink("../bin/busybox", filepath.Join(d, "sbin/bbinit"))
	os.Symlink("init", filepath.Join(d, "sbin/chain"))
	os.Mkdir(filepath.Join(d, "systemd"), 0o755)
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"sbin/init", true}, {"sbin/chain", true}, {"lib/systemd/systemd", true},
		{"sbin/bbinit", false}, {"init.sh", false}, {"missing", false}, {"systemd", false},
	} {
		if _, got := systemdInit(filepath.Join(d, tt.path)); got != tt.want {
			t.Errorf("systemdInit(%s) = %v; want %v", tt.path, got, tt.want)
		}
	}
}
