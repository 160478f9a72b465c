package procview

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/golden/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to make it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from its golden file (-want +got):\n%s", name, diff)
	}
}

func TestCmdline(t *testing.T) {
	line := "ubd0=root.img mem=64M con0=fd:0,fd:1 con=null quiet foo=bar init=/probe.sh root=98:0 console=tty0"
	if got := string(Cmdline(line)); got != line+"\n" {
		t.Errorf("Cmdline = %q; want the line and a newline", got)
	}
}

func TestBootID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`)
	for _, r := range [][16]byte{{}, {0: 0xff, 6: 0xff, 8: 0xff, 15: 0xff}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}} {
		if got := string(BootID(r)); !re.MatchString(got) {
			t.Errorf("BootID(%x) = %q; want a version 4 UUID and a newline", r, got)
		}
	}
	if got := string(BootID([16]byte{})); got != "00000000-0000-4000-8000-000000000000\n" {
		t.Errorf("BootID(zero) = %q", got)
	}
}

const (
	kB = 1024
	mB = 1 << 20
)

// kernelLine is the layout of a "Key: N kB" line the kernel prints.
var kernelLine = regexp.MustCompile(`^[A-Za-z0-9_()]+: +[0-9]+ kB$`)

// checkMeminfo checks what every rendered meminfo must hold: the host's
// lines in the host's order, the changed ones in the kernel's layout, and
// figures that free(1) can subtract without going negative.
func checkMeminfo(t *testing.T, host, got []byte) *Meminfo {
	t.Helper()
	h, err := ParseMeminfo(host)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseMeminfo(got)
	if err != nil {
		t.Fatalf("rendered meminfo does not parse: %v\n%s", err, got)
	}
	if len(g.lines) != len(h.lines) {
		t.Fatalf("rendered meminfo has %d lines; the host's %d", len(g.lines), len(h.lines))
	}
	for i, l := range g.lines {
		hl := h.lines[i]
		if l.key != hl.key {
			t.Errorf("line %d is %q; the host's is %q", i, l.text, hl.text)
		}
		if l.text != hl.text {
			if !kernelLine.MatchString(l.text) || l.val < 1e8 && len(l.text) != 16+8+3 {
				t.Errorf("changed line %q is not in the kernel's layout (16+8 columns, kB)", l.text)
			}
		}
	}
	v := func(k string) uint64 { x, _ := g.KB(k); return x }
	if v("MemFree") > v("MemTotal") || v("MemAvailable") > v("MemTotal") || v("MemAvailable") < v("MemFree") {
		t.Errorf("MemTotal %d, MemFree %d, MemAvailable %d: want free <= available <= total", v("MemTotal"), v("MemFree"), v("MemAvailable"))
	}
	if v("Buffers")+v("Cached")+v("SReclaimable") > v("MemTotal")-v("MemFree") {
		t.Errorf("Buffers %d + Cached %d + SReclaimable %d (procps's buff/cache) exceed the used %d", v("Buffers"), v("Cached"), v("SReclaimable"), v("MemTotal")-v("MemFree"))
	}
	for _, l := range g.lines {
		if l.kB && l.text != h.lines[h.index[l.key]].text && l.val > v("MemTotal") && !strings.HasPrefix(l.key, "Swap") {
			t.Errorf("%s = %d kB exceeds MemTotal %d", l.key, l.val, v("MemTotal"))
		}
	}
	if v("SwapFree") > v("SwapTotal") {
		t.Errorf("SwapFree %d > SwapTotal %d", v("SwapFree"), v("SwapTotal"))
	}
	return g
}

func v1Stat(t *testing.T) map[string]uint64 {
	s, err := ParseFlatKeyed(read(t, "memory.stat.v1"))
	if err != nil {
		t.Fatal(err)
	}
	return V1Stat(s)
}

func v2Stat(t *testing.T) map[string]uint64 {
	s, err := ParseFlatKeyed(read(t, "memory.stat.v2"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRenderMeminfo(t *testing.T) {
	host := read(t, "host-meminfo")
	hm, err := ParseMeminfo(host)
	if err != nil {
		t.Fatal(err)
	}
	hkb := func(k string) uint64 { v, _ := hm.KB(k); return v }
	small := map[string]uint64{"file": 6 * mB, "anon": 10 * mB, "active_file": 2 * mB, "inactive_file": 3 * mB,
		"active_anon": 1 * mB, "inactive_anon": 9 * mB, "shmem": 1 * mB, "file_mapped": 4 * mB, "unevictable": 0}
	tests := []struct {
		name string
		m    Memory
		want map[string]uint64 // kB
	}{
		{"no-mem", Memory{}, nil},
		{"mem-not-enforced", Memory{Mem: 64 * mB}, map[string]uint64{"MemTotal": 65536, "MemFree": 65536, "MemAvailable": 65536,
			"Buffers": 0, "Cached": 0, "SwapTotal": 0}},
		{"mem-above-host", Memory{Mem: 1 << 50}, map[string]uint64{"MemTotal": hkb("MemTotal"), "MemFree": hkb("MemFree")}},
		{"v1-cgroup", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 20 * mB}, {Limit: Unlimited, Usage: 3 << 30}},
			Stat: small}, map[string]uint64{"MemTotal": 65536, "MemFree": 45056, "MemAvailable": 45056 + 5120, "Buffers": 0,
			"Cached": 6144, "AnonPages": 10240, "Active(file)": 2048, "Inactive(file)": 3072, "Active": 3072, "Inactive": 12288,
			"Shmem": 1024, "Mapped": 4096, "Slab": 0, "SReclaimable": 0}},
		{"v1-real-stat", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 30 * mB}}, Stat: v1Stat(t)},
			map[string]uint64{"MemTotal": 65536, "MemFree": 34816, "MemAvailable": 65536, "Cached": 30720}},
		{"v2-cgroup", Memory{Mem: 128 * mB, Cgroup: []CgroupLevel{{Limit: 128 * mB, Usage: 70 * mB, Swap: true, SwapLimit: Unlimited}},
			Stat: v2Stat(t)}, map[string]uint64{"MemTotal": 131072, "MemFree": 59392, "Slab": 4842, "SReclaimable": 3783,
			"SUnreclaim": 1058, "KernelStack": 416, "AnonPages": 21056, "Cached": 37332}},
		{"ancestor-tighter", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 10 * mB}, {Limit: 100 * mB, Usage: 80 * mB}},
			Stat: small}, map[string]uint64{"MemTotal": 65536, "MemFree": 20480}},
		{"ancestor-smaller", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 10 * mB}, {Limit: 32 * mB, Usage: 10 * mB}},
			Stat: small}, map[string]uint64{"MemTotal": 32768, "MemFree": 22528}},
		{"usage-over-limit", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 65 * mB}}, Stat: small},
			map[string]uint64{"MemTotal": 65536, "MemFree": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderMeminfo(host, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.m.Virtual() && !bytes.Equal(got, host) {
				t.Errorf("without mem= the text changed")
			}
			g := checkMeminfo(t, host, got)
			for k, want := range tc.want {
				if v, _ := g.KB(k); v != want {
					t.Errorf("%s = %d kB; want %d", k, v, want)
				}
			}
			golden(t, "meminfo-"+tc.name, got)
		})
	}
}

func TestRenderMeminfoSwap(t *testing.T) {
	host := bytes.Replace(read(t, "host-meminfo"), []byte("SwapTotal:             0 kB\nSwapFree:              0 kB"),
		[]byte("SwapTotal:       4194304 kB\nSwapFree:        3145728 kB"), 1)
	tests := []struct {
		name        string
		m           Memory
		total, free uint64 // kB
	}{
		{"not-enforced", Memory{Mem: 64 * mB}, 4194304, 3145728},
		{"unknown-swap-use", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 10 * mB}}}, 4194304, 3145728},
		{"own-use", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 10 * mB, Swap: true, SwapLimit: Unlimited, SwapUsage: 8 * mB}}}, 4194304, 4194304 - 8192},
		{"limited", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Swap: true, SwapLimit: 32 * mB, SwapUsage: 40 * mB}}}, 32768, 0},
		{"no-swap", Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Swap: true, SwapLimit: 0}}}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderMeminfo(host, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			g := checkMeminfo(t, host, got)
			if v, _ := g.KB("SwapTotal"); v != tc.total {
				t.Errorf("SwapTotal = %d; want %d", v, tc.total)
			}
			if v, _ := g.KB("SwapFree"); v != tc.free {
				t.Errorf("SwapFree = %d; want %d", v, tc.free)
			}
			swaps, err := RenderSwaps(read(t, "host-swaps"), host, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "swaps-"+tc.name, swaps)
			// /proc/swaps adds up to the same figures
			var size, used uint64
			lines := strings.Split(strings.TrimSuffix(string(swaps), "\n"), "\n")
			if lines[0] != SwapsHeader {
				t.Errorf("first line %q; want the header", lines[0])
			}
			for _, l := range lines[1:] {
				var name, typ string
				var s, u uint64
				var prio int
				if _, err := fmt.Sscan(l, &name, &typ, &s, &u, &prio); err != nil {
					t.Fatalf("swaps line %q: %v", l, err)
				}
				size += s
				used += u
			}
			if size != tc.total || size-used != tc.free && tc.name != "not-enforced" && tc.name != "unknown-swap-use" {
				t.Errorf("/proc/swaps sums to size %d used %d; meminfo says total %d free %d", size, used, tc.total, tc.free)
			}
		})
	}
}

func TestMemSummary(t *testing.T) {
	host := read(t, "host-meminfo")
	m := Memory{Mem: 64 * mB, Cgroup: []CgroupLevel{{Limit: 64 * mB, Usage: 20 * mB}}, Stat: map[string]uint64{"shmem": 1 * mB}}
	got, err := MemSummary(host, m)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Total: 64 * mB, Free: 44 * mB, Shared: 1 * mB}
	if got != want {
		t.Errorf("MemSummary = %+v; want %+v", got, want)
	}
	h, _ := ParseMeminfo(host)
	hostSum, _ := MemSummary(host, Memory{})
	if hostSum.Total != h.bytesOf("MemTotal") || hostSum.Free != h.bytesOf("MemFree") {
		t.Errorf("MemSummary without mem= = %+v; want the host's", hostSum)
	}
}

func TestSwapLine(t *testing.T) {
	// observed on Linux 6.18: swapon of an 8 MiB file
	want := "/tmp/pv/swf                             file\t\t8188\t\t0\t\t-2\n"
	if got := swapLine("/tmp/pv/swf", "file", 8188, 0, -2); got != want {
		t.Errorf("swapLine = %q; want %q", got, want)
	}
	want = "none                                    virtual\t\t16777216\t0\t\t0\n"
	if got := swapLine("none", "virtual", 16777216, 0, 0); got != want {
		t.Errorf("swapLine = %q; want %q", got, want)
	}
}

func TestParseMeminfoErrors(t *testing.T) {
	for _, in := range []string{"", "\n", "MemTotal: 5 kB\n", "MemFree: 1 kB\nMemTotal: x kB\n", "MemTotal: 1\nMemFree: 1\n"} {
		if _, err := ParseMeminfo([]byte(in)); err == nil {
			t.Errorf("ParseMeminfo(%q) succeeded; want an error", in)
		}
	}
	if _, err := ParseMeminfo(make([]byte, MaxInput+1)); err != ErrTooLong {
		t.Errorf("ParseMeminfo(huge) = %v; want ErrTooLong", err)
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]uint64{"max\n": Unlimited, "67108864\n": 64 * mB, "9223372036854771712\n": Unlimited, "0": 0} {
		if got, err := ParseLimit([]byte(in)); err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "12 kB", "maxx"} {
		if _, err := ParseLimit([]byte(in)); err == nil {
			t.Errorf("ParseLimit(%q) succeeded", in)
		}
	}
}

func TestV1Stat(t *testing.T) {
	s := v1Stat(t)
	v1, _ := ParseFlatKeyed(read(t, "memory.stat.v1"))
	if s["file"] != v1["total_cache"] || s["anon"] != v1["total_rss"] || s["inactive_file"] != v1["total_inactive_file"] || len(s) != 13 {
		t.Errorf("V1Stat took the wrong counters: %v", s)
	}
	if _, ok := s["cache"]; ok {
		t.Errorf("V1Stat kept a v1 name")
	}
}

func TestRenderUptime(t *testing.T) {
	tests := []struct {
		host string
		c    Clock
		want string
	}{
		{"29557.94 35212.32\n", Clock{BootOffset: 29557, Idle: 35200_00, CPUs: 2, HostCPUs: 2}, "0.94 1.88\n"},
		{"29600.05 35300.00\n", Clock{BootOffset: 29557, Idle: 35200_00, CPUs: 2, HostCPUs: 2}, "43.05 86.10\n"},
		{"29600.05 35300.00\n", Clock{BootOffset: 29557, Idle: 35200_00, CPUs: 1, HostCPUs: 2}, "43.05 43.05\n"},
		{"29600.05 35260.00\n", Clock{BootOffset: 29557, Idle: 35200_00, CPUs: 1, HostCPUs: 4}, "43.05 15.00\n"},
		{"10.00 5.00\n", Clock{BootOffset: 20, Idle: 9_00}, "0.00 0.00\n"}, // a clock before the boot: never negative
		{"100.00 50.00\n", Clock{}, "100.00 50.00\n"},
	}
	for _, tc := range tests {
		got, err := RenderUptime([]byte(tc.host), tc.c)
		if err != nil || string(got) != tc.want {
			t.Errorf("RenderUptime(%q, %+v) = %q, %v; want %q", tc.host, tc.c, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1.0 2.00", "1.00", "a.00 1.00", "1.00 2.00 3.00", ".50 1.00"} {
		if _, err := RenderUptime([]byte(bad), Clock{}); err == nil {
			t.Errorf("RenderUptime(%q) succeeded", bad)
		}
	}
}

func TestCPUList(t *testing.T) {
	for in, want := range map[string]string{"0-1\n": "0-1", "0": "0", "0,2-3,5\n": "0,2-3,5", "3,1,2": "1-3", "": "", "0-0": "0"} {
		s, err := ParseCPUList([]byte(in))
		if err != nil || s.String() != want {
			t.Errorf("ParseCPUList(%q).String() = %q, %v; want %q", in, s.String(), err, want)
		}
	}
	for _, bad := range []string{"1-0", "a", "0,", "-1", "01", "0-65536", " 1 - 2"} {
		if _, err := ParseCPUList([]byte(bad)); err == nil {
			t.Errorf("ParseCPUList(%q) succeeded", bad)
		}
	}
	on, _ := ParseCPUList([]byte("0-3"))
	one, _ := ParseCPUList([]byte("2"))
	if !Narrower(one, on) || Narrower(on, on) || Narrower(CPUSet{9: true}, on) {
		t.Errorf("Narrower is wrong")
	}
	if got := string(RenderCPUList(CPUSet{1: true, 3: true, 7: true}, on)); got != "1,3\n" {
		t.Errorf("RenderCPUList = %q; want 1,3", got)
	}
}

// fourCPUs makes a 4-CPU cpuinfo from the host's first paragraph.
func fourCPUs(t *testing.T) []byte {
	para, _, _ := strings.Cut(string(read(t, "host-cpuinfo")), "\n\n")
	var b strings.Builder
	for i := 0; i < 4; i++ {
		b.WriteString(strings.Replace(para, "processor\t: 0", fmt.Sprintf("processor\t: %d", i), 1))
		b.WriteString("\n\n")
	}
	return []byte(b.String())
}

func TestRenderCPUInfo(t *testing.T) {
	host := fourCPUs(t)
	got, err := RenderCPUInfo(host, CPUSet{1: true, 3: true})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cpuinfo-1,3", got)
	if n := strings.Count(string(got), "processor\t:"); n != 2 {
		t.Errorf("%d processor paragraphs; want 2", n)
	}
	if !strings.HasPrefix(string(got), "processor\t: 1\n") || !strings.Contains(string(got), "\n\nprocessor\t: 3\n") || !strings.HasSuffix(string(got), "\n\n") {
		t.Errorf("paragraphs of CPUs 1 and 3 with their numbers expected:\n%s", got)
	}
	all, _ := RenderCPUInfo(host, CPUSet{0: true, 1: true, 2: true, 3: true})
	if !bytes.Equal(all, host) {
		t.Errorf("every CPU allowed: the text changed")
	}
	s390 := []byte("vendor_id       : IBM/S390\n# processors    : 4\n")
	if got, _ := RenderCPUInfo(s390, CPUSet{0: true}); !bytes.Equal(got, s390) {
		t.Errorf("a text without processor paragraphs changed: %q", got)
	}
}

func TestRenderStat(t *testing.T) {
	host := read(t, "host-stat")
	got, err := RenderStat(host, CPUSet{1: true}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stat-1", got)
	lines := strings.Split(string(got), "\n")
	hostLines := strings.Split(string(host), "\n")
	if lines[0] != "cpu  "+strings.TrimPrefix(hostLines[2], "cpu1 ") {
		t.Errorf("cpu line %q; want cpu1's figures %q", lines[0], hostLines[2])
	}
	if lines[1] != hostLines[2] || strings.Contains(string(got), "\ncpu0 ") {
		t.Errorf("want only cpu1's line: %q", lines[1])
	}
	var hb, gb uint64
	fmt.Sscanf(string(host[strings.Index(string(host), "btime "):]), "btime %d", &hb)
	fmt.Sscanf(string(got[strings.Index(string(got), "btime "):]), "btime %d", &gb)
	if gb != hb+1000 {
		t.Errorf("btime %d; want the host's %d + 1000", gb, hb)
	}
	// all CPUs and no shift: the host's text
	if same, _ := RenderStat(host, nil, 0); !bytes.Equal(same, host) {
		t.Errorf("nothing to change, but the text changed")
	}
	both, _ := RenderStat(host, CPUSet{0: true, 1: true}, 0)
	if !bytes.Equal(both, host) {
		t.Errorf("all CPUs allowed: the sum differs from the host's cpu line:\n%s", both)
	}
	for _, bad := range []string{"intr 1\n", "cpu  1 2\ncpu  1 2\n", "cpu  1\ncpu0 x\n", "cpu  1\nbtime x\n"} {
		if _, err := RenderStat([]byte(bad), CPUSet{0: true}, 0); err == nil {
			t.Errorf("RenderStat(%q) succeeded", bad)
		}
	}
}
