package main

import "os/exec"

// startup: process start-up to usage message, ours vs the real tool, for the
// helpers every script calls. A cheap benchmark that also proves the harness.

// noArgsStarts times uml_mkcow at path run with no arguments (usage and
// exit), averaged over 20 runs.
func noArgsStarts(e *Env, path string) ([]Metric, error) {
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
