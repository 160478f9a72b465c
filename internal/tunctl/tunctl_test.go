//go:build linux

package tunctl

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

func fakeEnv() (*Env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	users := map[string]int{"nobody": 65534, "root": 0}
	groups := map[string]int{"nogroup": 65534, "users": 100}
	return &Env{
		Argv0: "tunctl", Stdout: &out, Stderr: &errb, Euid: 0,
		LookupUser:  func(n string) (int, bool) { id, ok := users[n]; return id, ok },
		LookupGroup: func(n string) (int, bool) { id, ok := groups[n]; return id, ok },
	}, &out, &errb
}

func TestStrtol(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"1000", 1000, true}, {"0x10", 16, true}, {"010", 8, true},
		{"-5", -5, true}, {" 7", 7, true}, {"+3", 3, true}, {"12abc", 0, false}, {"7 ", 0, false},
		{"0x", 0, false}, {"08", 0, false}, {"-", 0, false}, {"abc", 0, false},
		{"99999999999999999999", -1, true}, {"4294967296", 0, true},
	}
	for _, tt := range tests {
		got, ok := strtol(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("strtol(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		args    []string
		want    Options
		wantErr string // stderr; "" = success
	}{
		{nil, Options{Clone: "/dev/net/tun"}, ""},
		{[]string{"-bt", "t10"}, Options{Brief: true, Name: "t10", Clone: "/dev/net/tun"}, ""},
		{[]string{"-tt11"}, Options{Name: "t11", Clone: "/dev/net/tun"}, ""},
		{[]string{"-d", "t10", "-t", "t12"}, Options{Delete: true, Name: "t12", Clone: "/dev/net/tun"}, ""},
		{[]string{"-u", "nobody", "-g", "users", "-f", "/dev/x"}, Options{Owner: 65534, HasOwner: true, Group: 100, HasGroup: true, Clone: "/dev/x"}, ""},
		{[]string{"-u", "1", "-u", "0x2"}, Options{Owner: 2, HasOwner: true, Clone: "/dev/net/tun"}, ""},
		{[]string{"-h"}, Options{}, "tunctl: invalid option -- 'h'\n"},
		{[]string{"--foo"}, Options{}, "tunctl: invalid option -- '-'\n"},
		{[]string{"-t"}, Options{}, "tunctl: option requires an argument -- 't'\n"},
		{[]string{"-u", "bogus"}, Options{}, "'bogus' is neither a username nor a numeric uid.\n"},
		{[]string{"-g", "12abc"}, Options{}, "'12abc' is neither a groupname nor a numeric group.\n"},
		{[]string{"extra"}, Options{}, "usage"},
		{[]string{"--", "-t", "x"}, Options{}, "usage"},
		{[]string{"extra", "-t", "x"}, Options{}, "usage"},
	}
	for _, tt := range tests {
		env, _, errb := fakeEnv()
		got, err := Parse(env, tt.args)
		if tt.wantErr != "" {
			if err == nil {
				t.Errorf("Parse(%q) = %+v; want error", tt.args, got)
			} else if tt.wantErr != "usage" && errb.String() != tt.wantErr {
				t.Errorf("Parse(%q) stderr = %q; want %q", tt.args, errb.String(), tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestRunUsageAndExtensions(t *testing.T) {
	env, out, errb := fakeEnv()
	if code := Run(*env, []string{"-x"}); code != 1 {
		t.Errorf("Run(-x) = %d; want 1", code)
	}
	if !strings.HasPrefix(errb.String(), "tunctl: invalid option -- 'x'\nCreate: tunctl [-b] [-u owner]") {
		t.Errorf("Run(-x) stderr = %q", errb.String())
	}
	if code := Run(*env, []string{"--version"}); code != 0 || !strings.HasPrefix(out.String(), "tunctl (umlkit) ") {
		t.Errorf("Run(--version) = %d, %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	if code := Run(*env, []string{"-f", t.TempDir() + "/none"}); code != 1 || !strings.HasSuffix(errb.String(), "/none' : No such file or directory\n") {
		t.Errorf("Run(-f missing) = %d, %q", code, errb.String())
	}
}

// TestIntegrationRunInNetNS creates, lists and deletes devices in a fresh
// network namespace entered by a locked thread.
func TestIntegrationRunInNetNS(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the netns
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		run := func(args ...string) (int, string, string) {
			env, out, errb := fakeEnv()
			code := Run(*env, args)
			return code, out.String(), errb.String()
		}
		steps := []struct {
			args     []string
			code     int
			out, err string
		}{
			{nil, 0, "Set 'tap0' persistent and owned by uid 0\n", ""},
			{[]string{"-b"}, 0, "tap1\n", ""},
			{[]string{"-u", "nobody", "-g", "nogroup", "-t", "umltap5"}, 0, "Set 'umltap5' persistent and owned by uid 65534 gid 65534\n", ""},
			{[]string{"-g", "100", "-t", "aaaaaaaaaaaaaaaaaaaa"}, 0, "Set 'aaaaaaaaaaaaaaa' persistent and owned by gid 100\n", ""},
			{[]string{"-t", "a/b"}, 1, "", "TUNSETIFF: Invalid argument\n"},
			{[]string{"-f", "/dev/null"}, 1, "", "TUNSETIFF: Inappropriate ioctl for device\n"},
			{[]string{"-b", "-d", "tap1"}, 0, "Set 'tap1' nonpersistent\n", ""},
			{[]string{"-d", "nonexist9"}, 0, "Set 'nonexist9' nonpersistent\n", ""},
		}
		for _, s := range steps {
			code, out, errs := run(s.args...)
			if code != s.code || out != s.out || errs != s.err {
				t.Errorf("tunctl %q = %d, %q, %q; want %d, %q, %q", s.args, code, out, errs, s.code, s.out, s.err)
			}
		}
		code, out, _ := run("--json")
		var list []Listing
		if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 {
			t.Errorf("--json = %d, %q, %v", code, out, err)
			return
		}
		var names []string
		for _, l := range list {
			names = append(names, l.Name)
			if l.Name == "umltap5" && (l.Owner != 65534 || l.Group != 65534) {
				t.Errorf("umltap5 listing = %+v", l)
			}
			if l.Name == "tap0" && (l.Owner != 0 || l.Group != -1) {
				t.Errorf("tap0 listing = %+v", l)
			}
		}
		if got := strings.Join(names, " "); got != "tap0 umltap5 aaaaaaaaaaaaaaa" {
			t.Errorf("--json names = %q; want tap0 umltap5 aaaaaaaaaaaaaaa", got)
		}
	}()
	<-done
}
