//go:build amd64

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEntryClearsEnvironment builds uml_net as the Makefile does and runs it
// with GODEBUG=inittrace=1: the Go runtime prints an "init ..." line per
// package when it parses that variable, so any such line means the
// caller's runtime variables reached the first (setuid-root) image.
func TestEntryClearsEnvironment(t *testing.T) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("no /proc: the entry point falls back to the runtime")
	}
	bin := filepath.Join(t.TempDir(), "uml_net")
	build := exec.Command("go", "build", "-ldflags=-E=main.entry", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, withEntry := range []bool{true, false} {
		path := bin
		if !withEntry {
			path = filepath.Join(t.TempDir(), "uml_net-plain")
			b := exec.Command("go", "build", "-o", path, ".")
			b.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := b.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
		}
		cmd := exec.Command(path, "--version")
		cmd.Env = []string{"GODEBUG=inittrace=1", "GOGC=1"}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("uml_net --version: %v\n%s", err, stderr.String())
		}
		traced := strings.Contains(stderr.String(), "init ")
		if withEntry && traced {
			t.Errorf("with the entry point, the runtime saw GODEBUG:\n%s", stderr.String())
		}
		if !withEntry && !traced {
			t.Errorf("the probe is blind: without the entry point GODEBUG=inittrace=1 printed nothing")
		}
	}
}
