package cgroup

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseBusAddress(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"unix:path=/run/user/1000/bus", []string{"/run/user/1000/bus"}},
		{"unix:path=/tmp/a%20b,guid=0123;unix:abstract=/tmp/dbus-x;tcp:host=h,port=1;unix:path=/b", []string{"/tmp/a b", "/b"}},
		{"unix:guid=x,path=%2ftmp%2fs", []string{"/tmp/s"}},
		{"unix:path=/bad%2", nil},
		{"unix:path=/nul%00", nil},
		{"unix:runtime=yes", nil},
		{"", nil},
	} {
		if got := ParseBusAddress(tt.in); !cmp.Equal(got, tt.want) {
			t.Errorf("ParseBusAddress(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseBusAddress(f *testing.F) {
	for _, s := range []string{"unix:path=/run/user/1000/bus", "unix:abstract=/x,guid=1;unix:path=%2fa", "tcp:host=a,port=1", ";;unix:path="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range ParseBusAddress(s) {
			if p == "" || strings.ContainsRune(p, 0) {
				t.Errorf("ParseBusAddress(%q) gave %q", s, p)
			}
		}
	})
}

func TestBusAddrs(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tt := range []struct {
		name string
		env  map[string]string
		want []BusAddr
	}{
		{"nothing set: the user's /run/user directory", nil, []BusAddr{
			{Path: "/run/user/1000/bus"}, {Path: "/run/user/1000/systemd/private", P2P: true}}},
		{"session bus first, runtime dir next", map[string]string{
			"DBUS_SESSION_BUS_ADDRESS": "unix:path=/tmp/s;unix:path=/run/r/bus", "XDG_RUNTIME_DIR": "/run/r"},
			[]BusAddr{{Path: "/tmp/s"}, {Path: "/run/r/bus"}, {Path: "/run/r/systemd/private", P2P: true}}},
		{"a relative runtime dir is not trusted", map[string]string{"XDG_RUNTIME_DIR": "run/r"}, []BusAddr{
			{Path: "/run/user/1000/bus"}, {Path: "/run/user/1000/systemd/private", P2P: true}}},
		{"relative bus path ignored, .. cleaned", map[string]string{
			"DBUS_SESSION_BUS_ADDRESS": "unix:path=rel", "XDG_RUNTIME_DIR": "/run/r/../q"},
			[]BusAddr{{Path: "/run/q/bus"}, {Path: "/run/q/systemd/private", P2P: true}}},
	} {
		if got := BusAddrs(env(tt.env), 1000); !cmp.Equal(got, tt.want) {
			t.Errorf("%s: BusAddrs = %+v; want %+v", tt.name, got, tt.want)
		}
	}
}

// TestDialChecked: only a socket of ours, answered by a process of ours.
func TestDialChecked(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx := context.Background()
	c, err := dialChecked(ctx, sock, os.Getuid())
	if err != nil {
		t.Fatalf("dialChecked(our socket) = %v", err)
	}
	c.Close()
	if _, err := dialChecked(ctx, sock, os.Getuid()+1); err == nil || !strings.Contains(err.Error(), "not owned by uid") {
		t.Errorf("dialChecked(as another uid) = %v; want the owner refused", err)
	}
	if os.Getuid() == 0 {
		// A socket owned by uid 4711 but answered by root: refused on
		// the peer's credentials.
		if err := os.Chown(sock, 4711, 4711); err != nil {
			t.Fatal(err)
		}
		if _, err := dialChecked(ctx, sock, 4711); err == nil || !strings.Contains(err.Error(), "answered by uid 0, not 4711") {
			t.Errorf("dialChecked(socket of 4711 answered by root) = %v; want refused", err)
		}
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(sock, link)
	for _, p := range []string{file, link} {
		if _, err := dialChecked(ctx, p, os.Getuid()); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("dialChecked(%s) = %v; want not a socket", p, err)
		}
	}
}

// TestStartScopeNoManager: nothing answers, and the error names each place
// tried, in one line.
func TestStartScopeNoManager(t *testing.T) {
	rt := t.TempDir()
	env := map[string]string{"XDG_RUNTIME_DIR": rt}
	_, err := StartScope(context.Background(), "uml-x-1.scope", "test", os.Getpid(), func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("StartScope succeeded without a manager")
	}
	want := "no systemd user manager answered (" + rt + "/bus: no such file or directory; " + rt + "/systemd/private: no such file or directory)"
	if err.Error() != want {
		t.Errorf("StartScope = %q; want %q", err, want)
	}
}

func TestScopeUnit(t *testing.T) {
	for _, tt := range []struct {
		umid string
		want string
	}{
		{"vm1", "uml-vm1-42.scope"},
		{"a-b c", `uml-a\x2db\x20c-42.scope`},
		{strings.Repeat("é", 63), "uml-42.scope"},
	} {
		if got := ScopeUnit(tt.umid, 42); got != tt.want {
			t.Errorf("ScopeUnit(%q) = %q; want %q", tt.umid, got, tt.want)
		}
	}
}
