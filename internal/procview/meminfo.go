package procview

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Meminfo is a parsed /proc/meminfo: the host's lines in order, with the
// value of each "Key: N kB" line.
type Meminfo struct {
	lines []memLine
	index map[string]int // key -> line
}

type memLine struct {
	text string // the line as the host printed it (no newline)
	key  string // "" for a line that is not "Key: N [kB]"
	val  uint64
	kB   bool
}

// ParseMeminfo parses a /proc/meminfo text. Lines it does not understand
// are kept as they are; MemTotal and MemFree must be there, in kB.
func ParseMeminfo(b []byte) (*Meminfo, error) {
	if len(b) > MaxInput {
		return nil, ErrTooLong
	}
	m := &Meminfo{index: map[string]int{}}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil, ErrMissing
	}
	for _, text := range strings.Split(s, "\n") {
		l := memLine{text: text}
		if key, rest, ok := strings.Cut(text, ":"); ok && key != "" && !strings.ContainsAny(key, " \t") {
			f := strings.Fields(rest)
			if len(f) == 1 || len(f) == 2 && f[1] == "kB" {
				if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					l.key, l.val, l.kB = key, v, len(f) == 2
				}
			}
		}
		if l.key != "" {
			if _, dup := m.index[l.key]; dup {
				l.key = "" // the first one counts
			} else {
				m.index[l.key] = len(m.lines)
			}
		}
		m.lines = append(m.lines, l)
	}
	for _, k := range []string{"MemTotal", "MemFree"} {
		if _, ok := m.KB(k); !ok {
			return nil, fmt.Errorf("%w: %s", ErrMissing, k)
		}
	}
	return m, nil
}

// KB returns the value of a "Key: N kB" line.
func (m *Meminfo) KB(key string) (uint64, bool) {
	i, ok := m.index[key]
	if !ok || !m.lines[i].kB {
		return 0, false
	}
	return m.lines[i].val, true
}

// bytesOf returns a kB line's value in bytes (0 when absent).
func (m *Meminfo) bytesOf(key string) uint64 {
	v, _ := m.KB(key)
	return v << 10
}

// set replaces the value of a kB line, in the kernel's layout for it (the
// key and its colon left-aligned in 16 columns, the number right-aligned in
// 8, then " kB"). A key the host does not show is not added.
func (m *Meminfo) set(key string, kb uint64) {
	i, ok := m.index[key]
	if !ok || !m.lines[i].kB {
		return
	}
	m.lines[i].val = kb
	m.lines[i].text = fmt.Sprintf("%-16s%8d kB", key+":", kb)
}

// Bytes renders the text.
func (m *Meminfo) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range m.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Unlimited is a cgroup limit of "max" (cgroup v1 shows its largest
// page-aligned number instead; ParseLimit maps both here).
const Unlimited = ^uint64(0)

// CgroupLevel is one memory cgroup on the path from the machine's up to
// the hierarchy's root, in bytes.
type CgroupLevel struct {
	Limit, Usage uint64 // memory.max, memory.current (v1: memory.limit_in_bytes, memory.usage_in_bytes)
	// Swap: the swap figures are known: memory.swap.max and
	// memory.swap.current (v1: memory.memsw.* minus memory.*).
	Swap                 bool
	SwapLimit, SwapUsage uint64
}

// Memory is the machine's memory.
type Memory struct {
	// Mem is mem= in bytes; 0 (no mem=) leaves /proc/meminfo and
	// /proc/swaps the host's.
	Mem uint64
	// Cgroup is the machine's memory cgroup and its ancestors, the
	// machine's first; empty when mem= could not be enforced.
	Cgroup []CgroupLevel
	// Stat is the machine's cgroup's memory.stat with cgroup v2 names
	// (V1Stat converts a v1 one).
	Stat map[string]uint64
}

// Virtual reports whether m changes the host's figures at all.
func (m Memory) Virtual() bool { return m.Mem != 0 || len(m.Cgroup) > 0 }

// userLines map meminfo lines to the memory.stat counters (v2 names) whose
// sum they show. Where memory.stat lacks one, the host's value is shown,
// capped at what the machine uses.
var userLines = []struct {
	key  string
	stat []string
}{
	{"SwapCached", []string{"swapcached"}},
	{"Active", []string{"active_anon", "active_file"}},
	{"Inactive", []string{"inactive_anon", "inactive_file"}},
	{"Active(anon)", []string{"active_anon"}},
	{"Inactive(anon)", []string{"inactive_anon"}},
	{"Active(file)", []string{"active_file"}},
	{"Inactive(file)", []string{"inactive_file"}},
	{"Unevictable", []string{"unevictable"}},
	{"Dirty", []string{"file_dirty"}},
	{"Writeback", []string{"file_writeback"}},
	{"AnonPages", []string{"anon"}},
	{"Mapped", []string{"file_mapped"}},
	{"Shmem", []string{"shmem"}},
}

// kernelLines are shown from memory.stat where it has them (cgroup v2),
// as 0 where the cgroup does not count them (v1), and without a cgroup as
// the host's capped at what the machine uses.
var kernelLines = []struct{ key, stat string }{
	{"KReclaimable", "slab_reclaimable"},
	{"Slab", "slab"},
	{"SReclaimable", "slab_reclaimable"},
	{"SUnreclaim", "slab_unreclaimable"},
	{"KernelStack", "kernel_stack"},
	{"PageTables", "pagetables"},
	{"SecPageTables", "sec_pagetables"},
	{"Percpu", "percpu"},
	{"Zswap", "zswap"},
	{"Zswapped", "zswapped"},
	{"AnonHugePages", "anon_thp"},
	{"ShmemHugePages", "shmem_thp"},
	{"FileHugePages", "file_thp"},
}

// figures are the machine's values, in bytes, by meminfo key.
type figures map[string]uint64

// figures computes the machine's values from the host's meminfo.
func (m Memory) figures(h *Meminfo) figures {
	f := figures{}
	total := h.bytesOf("MemTotal")
	if m.Mem != 0 {
		total = min(total, m.Mem)
	}
	for _, l := range m.Cgroup {
		total = min(total, l.Limit)
	}
	var free, avail, used uint64
	if len(m.Cgroup) > 0 {
		used = min(m.Cgroup[0].Usage, total)
		free = total - used
		for _, l := range m.Cgroup {
			if l.Limit != Unlimited {
				free = min(free, l.Limit-min(l.Usage, l.Limit))
			}
		}
		used = total - free
		reclaim := m.Stat["active_file"] + m.Stat["inactive_file"] + m.Stat["slab_reclaimable"]
		avail = free + min(reclaim, used)
		f["Buffers"] = 0
		f["Cached"] = min(m.Stat["file"], used)
	} else {
		free = min(h.bytesOf("MemFree"), total)
		used = total - free
		avail = max(free, min(h.bytesOf("MemAvailable"), total))
		f["Buffers"] = min(h.bytesOf("Buffers"), used)
		f["Cached"] = min(h.bytesOf("Cached"), used-f["Buffers"])
	}
	f["MemTotal"], f["MemFree"], f["MemAvailable"] = total, free, min(avail, total)
	for _, l := range userLines {
		v, have := uint64(0), len(m.Cgroup) > 0
		for _, k := range l.stat {
			s, ok := m.Stat[k]
			have = have && ok
			v += s
		}
		if !have {
			v = h.bytesOf(l.key)
		}
		f[l.key] = min(v, used)
	}
	if len(m.Cgroup) > 0 {
		f["Mlocked"] = min(h.bytesOf("Mlocked"), f["Unevictable"])
	} else {
		f["Mlocked"] = min(h.bytesOf("Mlocked"), used)
	}
	for _, l := range kernelLines {
		v, ok := m.Stat[l.stat]
		if len(m.Cgroup) == 0 {
			v = h.bytesOf(l.key)
		} else if !ok {
			v = 0 // not counted per cgroup (v1): the host's would be the host's
		}
		f[l.key] = min(v, used)
	}
	// procps's free counts SReclaimable into buff/cache
	reclaimable := used - f["Buffers"] - f["Cached"]
	f["SReclaimable"] = min(f["SReclaimable"], reclaimable)
	f["KReclaimable"] = min(f["KReclaimable"], reclaimable)
	f["SwapTotal"], f["SwapFree"] = m.swap(h)
	return f
}

// swap returns the machine's swap size and free swap in bytes: the host's,
// narrowed by the cgroup's swap limits, and the cgroup's own use where it
// is known.
func (m Memory) swap(h *Meminfo) (total, free uint64) {
	total = h.bytesOf("SwapTotal")
	used := total - min(h.bytesOf("SwapFree"), total)
	if len(m.Cgroup) > 0 && m.Cgroup[0].Swap {
		used = m.Cgroup[0].SwapUsage
	}
	for _, l := range m.Cgroup {
		if l.Swap {
			total = min(total, l.SwapLimit)
		}
	}
	free = total - min(used, total)
	for _, l := range m.Cgroup {
		if l.Swap && l.SwapLimit != Unlimited {
			free = min(free, l.SwapLimit-min(l.SwapUsage, l.SwapLimit))
		}
	}
	return total, free
}

// Summary is the machine's memory in bytes, as sysinfo(2) reports it.
type Summary struct {
	Total, Free, Shared, Buffers, SwapTotal, SwapFree uint64
}

// MemSummary returns the figures of RenderMeminfo for the same inputs that
// sysinfo(2) reports.
func MemSummary(host []byte, m Memory) (Summary, error) {
	h, err := ParseMeminfo(host)
	if err != nil {
		return Summary{}, err
	}
	f := figures{}
	for _, k := range []string{"MemTotal", "MemFree", "Shmem", "Buffers", "SwapTotal", "SwapFree"} {
		f[k] = h.bytesOf(k)
	}
	if m.Virtual() {
		f = m.figures(h)
	}
	return Summary{Total: f["MemTotal"], Free: f["MemFree"], Shared: f["Shmem"], Buffers: f["Buffers"],
		SwapTotal: f["SwapTotal"], SwapFree: f["SwapFree"]}, nil
}

// RenderMeminfo returns the machine's /proc/meminfo from the host's: the
// lines m changes in the kernel's layout, every other line as the host
// printed it. Without mem= it is the host's text.
func RenderMeminfo(host []byte, m Memory) ([]byte, error) {
	h, err := ParseMeminfo(host)
	if err != nil {
		return nil, err
	}
	if !m.Virtual() {
		return host, nil
	}
	for key, v := range m.figures(h) {
		h.set(key, v>>10)
	}
	return h.Bytes(), nil
}
