package hostcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc builds a /proc-like tree with the given sysctl values.
func fakeProc(t *testing.T, userns bool, sysctls map[string]string) string {
	t.Helper()
	p := t.TempDir()
	if userns {
		os.MkdirAll(filepath.Join(p, "self/ns"), 0o755)
		os.WriteFile(filepath.Join(p, "self/ns/user"), nil, 0o644)
	}
	for k, v := range sysctls {
		f := filepath.Join(p, "sys", k)
		os.MkdirAll(filepath.Dir(f), 0o755)
		os.WriteFile(f, []byte(v+"\n"), 0o644)
	}
	return p
}

func TestUserNSMessages(t *testing.T) {
	tests := []struct {
		name    string
		userns  bool
		sysctls map[string]string
		euid    int
		want    string // "" = no problem
	}{
		{"ok", true, map[string]string{"user/max_user_namespaces": "1000"}, 1000, ""},
		{"no userns", false, nil, 1000, "CONFIG_USER_NS"},
		{"max zero", true, map[string]string{"user/max_user_namespaces": "0"}, 0, "sysctl -w user.max_user_namespaces=15000"},
		{"debian knob", true, map[string]string{"kernel/unprivileged_userns_clone": "0"}, 1000, "sysctl -w kernel.unprivileged_userns_clone=1"},
		{"debian knob root", true, map[string]string{"kernel/unprivileged_userns_clone": "0"}, 0, ""},
		{"apparmor", true, map[string]string{"kernel/apparmor_restrict_unprivileged_userns": "1"}, 1000, "AppArmor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := userNS(fakeProc(t, tt.userns, tt.sysctls), tt.euid)
			if tt.want == "" {
				if p != nil {
					t.Errorf("userNS = %v; want no problem", p)
				}
				return
			}
			if p == nil || !strings.Contains(p.Error(), tt.want) {
				t.Errorf("userNS = %v; want a message containing %q", p, tt.want)
			}
			if p != nil && strings.Contains(p.Error(), "\n") {
				t.Errorf("message is not one line: %q", p.Error())
			}
		})
	}
}

func TestFUSEMessages(t *testing.T) {
	dir := t.TempDir()
	if p := fuseAt(filepath.Join(dir, "fuse")); p == nil || !strings.Contains(p.Error(), "modprobe fuse") {
		t.Errorf("missing /dev/fuse: %v", p)
	}
	f := filepath.Join(dir, "locked")
	os.WriteFile(f, nil, 0o000)
	if os.Geteuid() != 0 { // root opens anything
		if p := fuseAt(f); p == nil || !strings.Contains(p.Error(), "chmod 0666") {
			t.Errorf("unusable /dev/fuse: %v", p)
		}
	}
}

func TestFuse2fsMissing(t *testing.T) {
	_, err := fuse2fsIn([]string{filepath.Join(t.TempDir(), "fuse2fs")})
	if err == nil || !strings.Contains(err.Error(), "apt-get install fuse2fs") {
		t.Errorf("fuse2fsIn(nothing) = %v; want a message naming the package", err)
	}
}
