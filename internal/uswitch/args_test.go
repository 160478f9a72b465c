//go:build linux

package uswitch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want Options
		out  string
		err  bool
	}{
		{nil, Options{Config: Config{CtlPath: DefaultCtlPath}}, "", false},
		{[]string{"-unix", "/s/ctl"}, Options{Config: Config{CtlPath: "/s/ctl"}}, "", false},
		{[]string{"-hub", "-unix", "c"}, Options{Config: Config{CtlPath: "c", Hub: true}}, "sw will be a hub instead of a switch\n", false},
		{[]string{"-unix", "c", "d", "-hub"}, Options{Config: Config{CtlPath: "c", DataPath: "d", Hub: true}}, "sw will be a hub instead of a switch\n", false},
		{[]string{"-compat-v0"}, Options{Config: Config{CtlPath: DefaultCtlPath, DataPath: DefaultDataPath, CompatV0: true}}, "Control protocol 0 compatibility\n", false},
		{[]string{"-compat-v0", "-unix", "c", "d"}, Options{Config: Config{CtlPath: "c", DataPath: "d", CompatV0: true}}, "Control protocol 0 compatibility\n", false},
		{[]string{"-compat-v0", "-unix", "c"}, Options{}, "Control protocol 0 compatibility\n", true},
		{[]string{"-tap", "tap0", "-daemon", "-pidfile", "p", "--logfile", "l"}, Options{Config: Config{CtlPath: DefaultCtlPath, Tap: "tap0"}, Daemon: true, PIDFile: "p", LogFile: "l"}, "", false},
		{[]string{"-tap"}, Options{}, "", true},
		{[]string{"-unix"}, Options{}, "", true},
		{[]string{"-hub", "-bogus"}, Options{}, "sw will be a hub instead of a switch\n", true},
		{[]string{"-h"}, Options{}, "", true},
		{[]string{"--help"}, Options{Config: Config{CtlPath: DefaultCtlPath}, Help: true}, "", false},
		{[]string{"-idle-timeout", "2s", "--max-conns=100", "--max-conns-per-uid", "8"}, Options{Config: Config{CtlPath: DefaultCtlPath, IdleTimeout: 2 * time.Second, MaxPorts: 100, MaxPortsPerUID: 8}}, "", false},
		{[]string{"--idle-timeout=0", "-max-conns-per-uid", "0", "--pidfile=p"}, Options{Config: Config{CtlPath: DefaultCtlPath, IdleTimeout: -1, MaxPortsPerUID: -1}, PIDFile: "p"}, "", false},
		{[]string{"-idle-timeout", "soon"}, Options{}, "", true},
		{[]string{"--max-conns=0"}, Options{}, "", true},
		{[]string{"--max-conns-per-uid=-1"}, Options{}, "", true},
		{[]string{"--hub=1"}, Options{}, "", true},
		{[]string{"--unix=c"}, Options{}, "", true},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		got, err := ParseArgs("sw", tt.args, &out)
		if out.String() != tt.out {
			t.Errorf("ParseArgs(%q) printed %q; want %q", tt.args, out.String(), tt.out)
		}
		if tt.err {
			if !errors.Is(err, ErrUsage) {
				t.Errorf("ParseArgs(%q) err = %v; want ErrUsage", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseArgs(%q) = %v", tt.args, err)
			continue
		}
		tt.want.Prog = "sw"
		if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(Config{})); d != "" {
			t.Errorf("ParseArgs(%q) mismatch (-want +got):\n%s", tt.args, d)
		}
	}
}

func TestUsage(t *testing.T) {
	want := "Usage : uml_switch [ -unix control-socket ] [ -hub ] [ -tap tap-device ]\n" +
		"or : uml_switch -compat-v0 [ -unix control-socket data-socket ] [ -hub ] [ -tap tap-device ]\n"
	if got := Usage("uml_switch"); got != want {
		t.Errorf("Usage = %q; want %q", got, want)
	}
	if !strings.HasSuffix(Usage("x"), "[ -tap tap-device ]\n") {
		t.Error("usage tail")
	}
}
