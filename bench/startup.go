package main

import "os/exec"

// startup: process start-up to usage message, ours vs the real tool, for the
// helpers every script calls. A cheap benchmark that also proves the harness.
func init() {
	run := func(path string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			const n = 20
			var total float64
			for i := 0; i < n; i++ {
				ms, err := Timed(exec.Command(path))
				if err != nil {
					return nil, err
				}
				total += ms
			}
			return []Metric{{"uml_mkcow no-args start", total / n, "ms"}}, nil
		}
	}
	register(&Benchmark{
		Name: "startup",
		Doc:  "uml_mkcow with no arguments (usage + exit): start-up cost, ours vs Debian's",
		Variants: []Variant{
			{Name: "ours", Run: func(e *Env) ([]Metric, error) { return run(e.Ours("uml_mkcow"))(e) }},
			{Name: "real", Run: run("/usr/bin/uml_mkcow")},
		},
	})
}
