package procview

import (
	"strconv"
	"strings"
)

// v1Limit is where cgroup v1 numbers stop being limits: "no limit" shows
// as the largest page-aligned signed 64-bit number.
const v1Limit = 1 << 62

// ParseLimit parses a memory cgroup limit file (memory.max, "max" or a
// number of bytes; v1 memory.limit_in_bytes) into bytes or Unlimited.
func ParseLimit(b []byte) (uint64, error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return Unlimited, nil
	}
	v, err := ParseCounter([]byte(s))
	if err != nil {
		return 0, err
	}
	if v >= v1Limit {
		return Unlimited, nil
	}
	return v, nil
}

// ParseCounter parses a file holding one decimal number (memory.current,
// memory.usage_in_bytes).
func ParseCounter(b []byte) (uint64, error) {
	if len(b) > 64 {
		return 0, ErrTooLong
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, ErrMalformed
	}
	return v, nil
}

// ParseFlatKeyed parses a cgroup "flat keyed" file such as memory.stat:
// one "key value" pair a line. Lines that are not such a pair are
// skipped; the first of two equal keys counts.
func ParseFlatKeyed(b []byte) (map[string]uint64, error) {
	if len(b) > MaxInput {
		return nil, ErrTooLong
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		if _, dup := m[f[0]]; !dup {
			m[f[0]] = v
		}
	}
	return m, nil
}

// v1Names maps the hierarchical counters of a cgroup v1 memory.stat to the
// cgroup v2 names the renderers use.
var v1Names = map[string]string{
	"total_cache":         "file",
	"total_rss":           "anon",
	"total_rss_huge":      "anon_thp",
	"total_shmem":         "shmem",
	"total_mapped_file":   "file_mapped",
	"total_dirty":         "file_dirty",
	"total_writeback":     "file_writeback",
	"total_swapcached":    "swapcached",
	"total_active_anon":   "active_anon",
	"total_inactive_anon": "inactive_anon",
	"total_active_file":   "active_file",
	"total_inactive_file": "inactive_file",
	"total_unevictable":   "unevictable",
}

// V1Stat converts a parsed cgroup v1 memory.stat to the v2 names: the
// hierarchical ("total_") counters, which include the cgroup's children as
// v2's do.
func V1Stat(v1 map[string]uint64) map[string]uint64 {
	m := map[string]uint64{}
	for k, v := range v1 {
		if n, ok := v1Names[k]; ok {
			m[n] = v
		}
	}
	return m
}
