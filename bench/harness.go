// Command bench runs named benchmarks of umlkit's binaries against the real
// Debian counterparts in the same run: variants alternate round by round, and
// the report prints each metric's median per variant and the ratio of ours to
// each other variant. Absolute times are never asserted anywhere.
//
// The benchmarks are data: each is a row of a table in benchmarks.go, and
// a short loop turns the rows into Benchmarks. The functions a row names
// live in the benchmark's own file (linux.go for boot, syscall and mem);
// guest.go boots a row's script on each kernel.
//
// Usage: go run ./bench [-rounds N] [-bin DIR] [-list] NAME...
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Metric is one measured value of one run.
type Metric struct {
	Name  string
	Value float64
	Unit  string // "ms", "MB/s", ...
}

// Variant is one implementation under test (ours, the real one, a reference).
type Variant struct {
	Name string
	// Run performs one measurement and returns its metrics.
	Run func(e *Env) ([]Metric, error)
}

// Benchmark is a named comparison. Variants[0] is ours; every other variant
// is compared against it.
type Benchmark struct {
	Name     string
	Doc      string
	Setup    func(e *Env) error // once per run, before the rounds
	Variants []Variant
	// Check runs after the rounds (e.g. compare checksums of outputs).
	Check func(e *Env) error
}

// Env is the shared state of one benchmark run.
type Env struct {
	Dir  string // scratch directory, removed at the end
	Bin  string // directory of our binaries
	Vars map[string]string
	Out  io.Writer
}

// Ours returns the path of one of our binaries.
func (e *Env) Ours(name string) string { return filepath.Join(e.Bin, name) }

// errSkip, wrapped in a Setup's error, skips the benchmark: main reports
// it and does not count it as failed.
var errSkip = errors.New("skipped")

// registry holds every benchmark by name.
var registry = byName(allBenchmarks())

func byName(bs []*Benchmark) map[string]*Benchmark {
	m := make(map[string]*Benchmark, len(bs))
	for _, b := range bs {
		if m[b.Name] != nil {
			panic("bench: two benchmarks named " + b.Name)
		}
		m[b.Name] = b
	}
	return m
}

// Timed runs cmd and returns its wall time in milliseconds.
func Timed(cmd *exec.Cmd) (float64, error) {
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok || len(out) == 0 {
			return 0, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	return float64(d.Microseconds()) / 1000, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func runOne(b *Benchmark, rounds int, bin string, out io.Writer) error {
	dir, err := os.MkdirTemp("", "umlkit-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &Env{Dir: dir, Bin: bin, Vars: map[string]string{}, Out: out}
	if b.Setup != nil {
		if err := b.Setup(e); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	// results[variant][metric] = values; order remembered for printing.
	results := map[string]map[string][]float64{}
	units := map[string]string{}
	var metricOrder []string
	for r := 0; r < rounds; r++ {
		for i := range b.Variants {
			// alternate the order each round so neither side always runs warm
			v := b.Variants[(i+r)%len(b.Variants)]
			ms, err := v.Run(e)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, v.Name, err)
			}
			if results[v.Name] == nil {
				results[v.Name] = map[string][]float64{}
			}
			for _, m := range ms {
				if _, ok := units[m.Name]; !ok {
					units[m.Name] = m.Unit
					metricOrder = append(metricOrder, m.Name)
				}
				results[v.Name][m.Name] = append(results[v.Name][m.Name], m.Value)
			}
		}
	}
	fmt.Fprintf(out, "== %s (%d rounds, alternating)\n", b.Name, rounds)
	ours := b.Variants[0].Name
	width := 28
	for _, m := range metricOrder {
		width = max(width, len(m))
	}
	for _, m := range metricOrder {
		om := median(results[ours][m])
		for _, v := range b.Variants {
			vals := results[v.Name][m]
			if len(vals) == 0 {
				continue
			}
			med := median(vals)
			line := fmt.Sprintf("%-*s %-14s median %10.3f %-5s", width, m, v.Name, med, units[m])
			if v.Name != ours && med != 0 {
				line += fmt.Sprintf("   ratio %s/%s = %.2f", ours, v.Name, om/med)
			}
			fmt.Fprintln(out, line)
		}
	}
	if b.Check != nil {
		if err := b.Check(e); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		fmt.Fprintf(out, "check: ok\n")
	}
	return nil
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds per variant")
	bin := flag.String("bin", "bin", "directory holding our binaries")
	list := flag.Bool("list", false, "list benchmarks")
	flag.Parse()
	if *list || flag.NArg() == 0 {
		names := make([]string, 0, len(registry))
		for n := range registry {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Printf("%-20s %s\n", n, registry[n].Doc)
		}
		if flag.NArg() == 0 && !*list {
			os.Exit(2)
		}
		return
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	names := flag.Args()
	if len(names) == 1 && names[0] == "all" {
		names = names[:0]
		for n := range registry {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	failed := false
	for _, n := range names {
		b, ok := registry[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown benchmark %q (try -list)\n", n)
			os.Exit(2)
		}
		if err := runOne(b, *rounds, absBin, os.Stdout); errors.Is(err, errSkip) {
			fmt.Printf("== %s: %v\n", n, err)
		} else if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", n, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
