package procmem

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const rollup = `55d0c0a6b000-7ffd3a5f5000 ---p 00000000 00:00 0                          [rollup]
Rss:                7412 kB
Pss:                2141 kB
Pss_Dirty:          1024 kB
Shared_Clean:       5000 kB
`

func TestParseRollup(t *testing.T) {
	if got, err := ParseRollup(rollup); err != nil || got != 2141<<10 {
		t.Errorf("ParseRollup = %d, %v", got, err)
	}
	for _, bad := range []string{"", "Rss: 1 kB\n", "Pss: x kB\n", "Pss: 1 MB\n", "Pss: -1 kB\n"} {
		if _, err := ParseRollup(bad); err == nil {
			t.Errorf("ParseRollup(%q) accepted", bad)
		}
	}
}

func TestTreeFake(t *testing.T) {
	proc := t.TempDir()
	put := func(pid, ppid string, pss string) {
		d := filepath.Join(proc, pid)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "status"), []byte("Name:\tx\nPPid:\t"+ppid+"\n"), 0o644)
		if pss != "" {
			os.WriteFile(filepath.Join(d, "smaps_rollup"), []byte("Pss: "+pss+" kB\n"), 0o644)
		}
	}
	put("10", "1", "100")
	put("11", "10", "20")
	put("12", "11", "3")
	put("13", "10", "") // a kernel thread or a process that ended: skipped
	put("20", "1", "5000")
	total, n, err := tree(proc, 10)
	if err != nil || total != 123<<10 || n != 3 {
		t.Errorf("tree = %d, %d, %v; want 123 KiB in 3", total, n, err)
	}
	if _, _, err := tree(proc, 99); err == nil {
		t.Error("a missing root pid gave no error")
	}
}

func TestTreeSelf(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep")
	}
	defer cmd.Process.Kill()
	total, n, err := Tree(os.Getpid())
	if err != nil {
		t.Skipf("smaps_rollup unreadable here: %v", err)
	}
	if n < 2 || total <= 0 {
		t.Errorf("Tree(self) = %d bytes in %d processes; want the test and its sleep", total, n)
	}
}

func TestHuman(t *testing.T) {
	for b, want := range map[int64]string{812 << 10: "812K", 7654 << 10: "7.5M", 3 << 30: "3.0G", 12 << 30: "12G"} {
		if got := Human(b); got != want {
			t.Errorf("Human(%d) = %q; want %q", b, got, want)
		}
	}
}

func FuzzParseRollup(f *testing.F) {
	f.Add(rollup)
	f.Add("Pss: 99999999999999999999 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseRollup(s); err == nil && v < 0 {
			t.Errorf("negative %d", v)
		}
	})
}
