package host

import (
	"os"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/cmdline"
)

func consoleMachine(t *testing.T, args ...string) *machine {
	t.Helper()
	c, err := cmdline.Parse(append([]string{"ubd0=x"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return &machine{cfg: c, stdio: Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}}
}

func TestLineSpecPrecedence(t *testing.T) {
	m := consoleMachine(t, "con3=pts", "con=null", "ssl=xterm", "ssl5=fd:0,fd:1")
	for _, tt := range []struct {
		serial bool
		n      int
		want   string
	}{
		{false, 0, "null"}, {false, 3, "pts"}, {false, 4, "null"},
		{true, 0, "xterm"}, {true, 5, "fd:0,fd:1"},
	} {
		if got := m.lineSpec(tt.serial, tt.n); got != tt.want {
			t.Errorf("lineSpec(serial=%v, %d) = %q; want %q", tt.serial, tt.n, got, tt.want)
		}
	}
	d := consoleMachine(t)
	if got := d.lineSpec(false, 0); got != "fd:0,fd:1" {
		t.Errorf("default con0 = %q", got)
	}
	if got := d.lineSpec(false, 1); got != "none" {
		t.Errorf("default con1 = %q; want none (our default, see console.go)", got)
	}
	if got := d.lineSpec(true, 63); got != "pty" {
		t.Errorf("default ssl63 = %q; want pty", got)
	}
}

func TestSetupConsolesPlan(t *testing.T) {
	m := consoleMachine(t, "con1=none", "con2=fd:0,fd:1", "con3=bogus", "ssl=none", "ssl1=null", "xterm=gnome-terminal,-t,-x")
	h := m.setupConsoles()
	defer h.Close()
	var names []string
	for _, l := range h.plan.Lines {
		names = append(names, l.Name()+"="+l.Spec)
	}
	got := strings.Join(names, " ")
	if !strings.HasPrefix(got, "con0=fd:0,fd:1 con1=none con2=fd:0,fd:1 con3=bogus ssl0=none ssl1=null ssl2=none") || strings.Contains(got, "con4") {
		t.Errorf("plan lines = %s", got)
	}
	if h.plan.Xterm != [3]string{"gnome-terminal", "-t", "-x"} {
		t.Errorf("xterm = %q", h.plan.Xterm)
	}
	if len(h.plan.FDs) != 2 || h.files["hostfd-0"] == nil || h.files["hostfd-1"] == nil {
		t.Errorf("fds = %v, files %v", h.plan.FDs, h.files)
	}
	if c := h.configured("con3"); c != "none" {
		t.Errorf("configured(con3) = %q; want none (does not parse)", c)
	}
	if c := h.configured("ssl1"); c != "null" {
		t.Errorf("configured(ssl1) = %q", c)
	}
	if order := h.donate(map[string]*os.File{}, []string{"con-in"}); len(order) != 3 {
		t.Errorf("donate = %v; want con-in and the two host fds", order)
	}
}
