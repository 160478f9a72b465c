package hostcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPtys(t *testing.T) {
	proc := fakeProc(t, true, map[string]string{"kernel/pty/max": "4096", "kernel/pty/reserve": "1024", "kernel/pty/nr": "3000"})
	if p := ptys(proc, 72); p != nil {
		t.Errorf("3000+72 of 4096-1024: %v", p)
	}
	p := ptys(proc, 73)
	if p == nil {
		t.Fatal("3000+73 of 4096-1024 accepted")
	}
	for _, want := range []string{"needs 73", "3000 of kernel.pty.max = 4096", "1024 are reserved", "sysctl -w kernel.pty.max=8192", "con=none"} {
		if !strings.Contains(p.Error(), want) {
			t.Errorf("%q lacks %q", p.Error(), want)
		}
	}
	if strings.Contains(p.Error(), "\n") {
		t.Errorf("not one line: %q", p.Error())
	}
	if p := ptys(t.TempDir(), 1000000); p != nil {
		t.Errorf("no pty sysctls (not Linux?): %v", p)
	}
	// a big need: the suggestion covers it
	if p := ptys(proc, 9000); p == nil || !strings.Contains(p.Error(), "kernel.pty.max=13312") {
		t.Errorf("need 9000: %v", p)
	}
}

func TestTasks(t *testing.T) {
	proc := fakeProc(t, true, map[string]string{"kernel/pid_max": "4096", "kernel/threads-max": "100000"})
	write := func(s string) { os.WriteFile(filepath.Join(proc, "loadavg"), []byte(s), 0o644) }
	write("0.10 0.20 0.30 2/4000 12345\n")
	if p := tasks(proc); p != nil {
		t.Errorf("4000+64 of 4096: %v", p)
	}
	write("0.10 0.20 0.30 2/4050 12345\n")
	p := tasks(proc)
	if p == nil || !strings.Contains(p.Error(), "kernel.pid_max = 4096") || !strings.Contains(p.Error(), "sysctl -w kernel.pid_max=8192") {
		t.Errorf("4050+64 of 4096: %v", p)
	}
	write("garbage")
	if p := tasks(proc); p != nil {
		t.Errorf("unparsable loadavg: %v", p)
	}
}

func FuzzPtysTasks(f *testing.F) {
	f.Add("4096", "1024", "3000", "0.1 0.2 0.3 1/200 9", 10)
	f.Fuzz(func(t *testing.T, max, reserve, nr, loadavg string, need int) {
		proc := fakeProc(t, true, map[string]string{"kernel/pty/max": max, "kernel/pty/reserve": reserve, "kernel/pty/nr": nr, "kernel/pid_max": max})
		os.WriteFile(filepath.Join(proc, "loadavg"), []byte(loadavg), 0o644)
		ptys(proc, need)
		tasks(proc)
	})
}
