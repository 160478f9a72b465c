// Package procmem measures the host memory of a machine: the proportional
// set size (PSS) of a process and all its descendants, from
// /proc/PID/smaps_rollup. PSS divides each shared page among the
// processes that map it, so the sum over many machines is what they cost
// the host together (RSS would count the shared binary once per process).
// ParseRollup is pure; Tree reads /proc.
package procmem

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoPss is returned for a smaps_rollup text without a Pss line.
var ErrNoPss = errors.New("smaps_rollup: no Pss line")

// ParseRollup returns the Pss of a /proc/PID/smaps_rollup text, in bytes.
func ParseRollup(text string) (int64, error) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, "Pss:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, errors.New("smaps_rollup: bad Pss line " + strconv.Quote(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, errors.New("smaps_rollup: bad Pss value " + strconv.Quote(f[0]))
		}
		return kb << 10, nil
	}
	return 0, ErrNoPss
}

// Tree returns the summed PSS of pid and its descendants, in bytes, and
// how many processes it counted. Processes that end or cannot be read
// while it walks are skipped; an unreadable pid itself is an error.
func Tree(pid int) (int64, int, error) {
	return tree("/proc", pid)
}

func tree(proc string, pid int) (int64, int, error) {
	children := childMap(proc)
	var total int64
	n := 0
	stack := []int{pid}
	seen := map[int]bool{}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(p), "smaps_rollup"))
		if err == nil {
			if pss, err := ParseRollup(string(b)); err == nil {
				total += pss
				n++
			}
		} else if p == pid {
			return 0, 0, err
		}
		stack = append(stack, children[p]...)
	}
	return total, n, nil
}

// childMap maps each pid to its children, from the PPid lines of every
// /proc/PID/status (the children files need CONFIG_PROC_CHILDREN and list
// a thread's children only).
func childMap(proc string) map[int][]int {
	m := map[int][]int{}
	ents, _ := os.ReadDir(proc)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join(proc, e.Name(), "status"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
				if ppid, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
					m[ppid] = append(m[ppid], pid)
				}
				break
			}
		}
		f.Close()
	}
	return m
}

// Human formats bytes as uml_mconsole --list shows them: whole KiB below
// 1 MiB, one decimal in MiB and GiB above, whole GiB from 10 GiB ("812K",
// "7.3M", "1.2G", "12G").
func Human(b int64) string {
	switch {
	case b >= 10<<30:
		return strconv.FormatInt(b>>30, 10) + "G"
	case b >= 1<<30:
		return strconv.FormatFloat(float64(b)/(1<<30), 'f', 1, 64) + "G"
	case b >= 1<<20:
		return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + "M"
	default:
		return strconv.FormatInt(b>>10, 10) + "K"
	}
}
