package procview

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func addFiles(f *testing.F, names ...string) {
	for _, n := range names {
		if b, err := os.ReadFile("testdata/" + n); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParseMeminfo: parsing never panics; what parses prints back to the
// same text (modulo a final newline), and a render of it for any machine
// keeps the host's lines in order and parses again.
func FuzzParseMeminfo(f *testing.F) {
	addFiles(f, "host-meminfo")
	f.Add([]byte("MemTotal: 1 kB\nMemFree: 2 kB\nHugePages_Total:       0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeminfo(b)
		if err != nil {
			return
		}
		if got := m.Bytes(); !bytes.Equal(bytes.TrimSuffix(got, []byte("\n")), bytes.TrimSuffix(b, []byte("\n"))) {
			t.Fatalf("re-print of %q = %q", b, got)
		}
		for _, mem := range []Memory{{Mem: 64 << 20}, {Mem: 1 << 20, Cgroup: []CgroupLevel{{Limit: 1 << 20, Usage: 2 << 20, Swap: true}}}} {
			out, err := RenderMeminfo(b, mem)
			if err != nil {
				t.Fatalf("render of a parsed text: %v", err)
			}
			g, err := ParseMeminfo(out)
			if err != nil || len(g.lines) != len(m.lines) {
				t.Fatalf("rendered text does not parse to the same lines: %v\n%q", err, out)
			}
			total, _ := g.KB("MemTotal")
			free, _ := g.KB("MemFree")
			if free > total {
				t.Fatalf("MemFree %d > MemTotal %d", free, total)
			}
			if _, err := RenderSwaps(b, b, mem); err != nil {
				t.Fatalf("swaps: %v", err)
			}
		}
	})
}

// FuzzParseFlatKeyed: never panics; every key it returns is a line's first
// field.
func FuzzParseFlatKeyed(f *testing.F) {
	addFiles(f, "memory.stat.v1", "memory.stat.v2")
	f.Add([]byte("a 1\nb x\n c  2 \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseFlatKeyed(b)
		if err != nil {
			return
		}
		for k := range m {
			if !bytes.Contains(b, []byte(k)) || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("key %q not from the input", k)
			}
		}
		V1Stat(m)
	})
}

// FuzzParseUptime: never panics; what parses prints back to text that
// parses to the same figures.
func FuzzParseUptime(f *testing.F) {
	addFiles(f, "host-uptime")
	f.Add([]byte("0.00 0.00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUptime(b)
		if err != nil {
			return
		}
		again, err := ParseUptime(u.Bytes())
		if err != nil || again != u {
			t.Fatalf("re-parse of %q: %+v, %v; want %+v", u.Bytes(), again, err, u)
		}
		RenderUptime(b, Clock{BootOffset: 5, Idle: 100, CPUs: 1, HostCPUs: 3})
	})
}

// FuzzParseCPUList: never panics; what parses prints in the canonical
// form, which parses to the same set.
func FuzzParseCPUList(f *testing.F) {
	f.Add([]byte("0-3,8,10-11\n"))
	f.Add([]byte("0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCPUList(b)
		if err != nil {
			return
		}
		again, err := ParseCPUList([]byte(s.String()))
		if err != nil || again.String() != s.String() || again.Len() != s.Len() {
			t.Fatalf("re-parse of %q: %q, %v", s.String(), again.String(), err)
		}
	})
}

// FuzzRenderCPUInfo: never panics, never adds a byte, and keeps the text
// as it is when every CPU it names is allowed.
func FuzzRenderCPUInfo(f *testing.F) {
	addFiles(f, "host-cpuinfo")
	f.Add([]byte("processor\t: 7\na: b\n\nprocessor : x\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := RenderCPUInfo(b, CPUSet{1: true})
		if err != nil {
			return
		}
		if len(out) > len(b) {
			t.Fatalf("output longer than the input")
		}
		all := CPUSet{}
		for _, para := range strings.SplitAfter(string(b), "\n\n") {
			if n, ok := processorOf(para); ok {
				all[n] = true
			}
		}
		if out, _ := RenderCPUInfo(b, all); !bytes.Equal(out, b) {
			t.Fatalf("every CPU allowed, text changed: %q -> %q", b, out)
		}
	})
}

// FuzzRenderStat: never panics; the output has no more cpuN lines than
// the input and exactly one "cpu" line.
func FuzzRenderStat(f *testing.F) {
	addFiles(f, "host-stat")
	f.Add([]byte("cpu  1 2\ncpu0 1 1\ncpu1 0 1\nbtime 5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := RenderStat(b, CPUSet{0: true}, 3)
		if err != nil {
			return
		}
		count := func(x []byte) int {
			n := 0
			for _, l := range strings.Split(string(x), "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] == "cpu" {
					n++
				}
			}
			return n
		}
		if count(out) != 1 || bytes.Count(out, []byte("\ncpu")) > bytes.Count(b, []byte("\ncpu"))+1 {
			t.Fatalf("RenderStat(%q) = %q", b, out)
		}
	})
}
