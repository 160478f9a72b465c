package procview

import (
	"slices"
	"strconv"
	"strings"
)

// MaxCPUs bounds the CPU numbers a CPU list may name.
const MaxCPUs = 1 << 16

// CPUSet is a set of CPU numbers.
type CPUSet map[int]bool

// ParseCPUList parses the kernel's CPU list format ("0-3,8,10-11", as in
// /sys/devices/system/cpu/online; empty for no CPU).
func ParseCPUList(b []byte) (CPUSet, error) {
	if len(b) > 64<<10 {
		return nil, ErrTooLong
	}
	s := CPUSet{}
	text := strings.TrimSpace(string(b))
	if text == "" {
		return s, nil
	}
	for _, part := range strings.Split(text, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a >= MaxCPUs || lo != strconv.Itoa(a) {
			return nil, ErrMalformed
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b >= MaxCPUs || hi != strconv.Itoa(b) {
				return nil, ErrMalformed
			}
		}
		for i := a; i <= b; i++ {
			s[i] = true
		}
	}
	return s, nil
}

// String renders the set in the kernel's CPU list format.
func (s CPUSet) String() string {
	ids := s.sorted()
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(ids[i]))
		} else {
			parts = append(parts, strconv.Itoa(ids[i])+"-"+strconv.Itoa(ids[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func (s CPUSet) sorted() []int {
	ids := make([]int, 0, len(s))
	for id, in := range s {
		if in {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Len is the number of CPUs in the set.
func (s CPUSet) Len() int { return len(s.sorted()) }

// Intersect returns the CPUs in both sets.
func (s CPUSet) Intersect(o CPUSet) CPUSet {
	r := CPUSet{}
	for id, in := range s {
		if in && o[id] {
			r[id] = true
		}
	}
	return r
}

// Narrower reports whether the machine's CPUs (allowed, among the host's
// online ones) are fewer than the host's: only then are the CPU views
// virtualised.
func Narrower(allowed, online CPUSet) bool {
	n := allowed.Intersect(online).Len()
	return n > 0 && n < online.Len()
}

// RenderCPUList returns /sys/devices/system/cpu/online for the machine:
// the online CPUs it may use, with their host numbers.
func RenderCPUList(allowed, online CPUSet) []byte {
	return []byte(allowed.Intersect(online).String() + "\n")
}

// RenderCPUInfo returns the machine's /proc/cpuinfo: the host's
// paragraphs of the CPUs in allowed, with their host numbers (as the
// kernel shows a host whose other CPUs are offline). A text without
// "processor" paragraphs (an architecture that lays it out otherwise) is
// returned as it is.
func RenderCPUInfo(host []byte, allowed CPUSet) ([]byte, error) {
	if len(host) > MaxInput {
		return nil, ErrTooLong
	}
	text := string(host)
	var out strings.Builder
	seen := false
	for len(text) > 0 {
		para, rest, found := strings.Cut(text, "\n\n")
		if found {
			para += "\n\n"
		}
		text = rest
		n, ok := processorOf(para)
		if !ok {
			out.WriteString(para) // a paragraph of no CPU: kept
			continue
		}
		seen = true
		if allowed[n] {
			out.WriteString(para)
		}
	}
	if !seen {
		return host, nil
	}
	return []byte(out.String()), nil
}

// processorOf returns N of a paragraph that starts "processor\t: N".
func processorOf(para string) (int, bool) {
	line, _, _ := strings.Cut(para, "\n")
	key, val, ok := strings.Cut(line, ":")
	if !ok || strings.TrimSpace(key) != "processor" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(val))
	if err != nil || n < 0 || n >= MaxCPUs {
		return 0, false
	}
	return n, true
}

// RenderStat returns the machine's /proc/stat from the host's: the "cpuN"
// lines of the CPUs in allowed (host numbers), the "cpu" line their sum,
// btime moved by shift seconds (the machine's boot offset when it has its
// own time namespace, so ps's start times stay right), everything else the
// host's. allowed == nil keeps every CPU; when allowed keeps every CPU the
// host shows, the host's "cpu" line stays (the kernel sums nanoseconds, so
// it can differ from the sum of the rounded per-CPU figures).
func RenderStat(host []byte, allowed CPUSet, shift uint64) ([]byte, error) {
	if len(host) > MaxInput {
		return nil, ErrTooLong
	}
	text := strings.TrimSuffix(string(host), "\n")
	lines := strings.Split(text, "\n")
	total := -1
	dropped := false
	var sum []uint64
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		name := f[0]
		switch {
		case name == "cpu":
			if total >= 0 {
				return nil, ErrMalformed
			}
			total = i
		case strings.HasPrefix(name, "cpu") && allowed != nil:
			n, err := strconv.Atoi(name[3:])
			if err != nil || n < 0 || name[3:] != strconv.Itoa(n) {
				continue
			}
			if !allowed[n] {
				lines[i] = "\x00" // dropped below
				dropped = true
				continue
			}
			if len(sum) < len(f)-1 {
				sum = append(sum, make([]uint64, len(f)-1-len(sum))...)
			}
			for j, s := range f[1:] {
				v, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return nil, ErrMalformed
				}
				sum[j] += v
			}
		case name == "btime":
			if len(f) != 2 {
				return nil, ErrMalformed
			}
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return nil, ErrMalformed
			}
			lines[i] = "btime " + strconv.FormatUint(v+shift, 10)
		}
	}
	if total < 0 {
		return nil, ErrMissing
	}
	if dropped { // else the host's own sum (the kernel's, from nanoseconds) stays
		var b strings.Builder
		b.WriteString("cpu ")
		for _, v := range sum {
			b.WriteString(" ")
			b.WriteString(strconv.FormatUint(v, 10))
		}
		lines[total] = b.String()
	}
	var out strings.Builder
	for _, l := range lines {
		if l != "\x00" {
			out.WriteString(l)
			out.WriteByte('\n')
		}
	}
	return []byte(out.String()), nil
}
