package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

func TestNormalizeLegacy(t *testing.T) {
	c := New("sw", "test")
	c.Flags().Bool("hub", false, "")
	c.Flags().String("unix", "", "")
	c.Flags().BoolP("daemon", "d", false, "")
	tests := []struct{ in, want []string }{
		{[]string{"-hub", "-unix", "x"}, []string{"--hub", "--unix", "x"}},
		{[]string{"-unix=x", "-d"}, []string{"--unix=x", "-d"}},
		{[]string{"--hub", "-", "--", "-hub"}, []string{"--hub", "-", "--", "-hub"}},
		{[]string{"-nope"}, []string{"-nope"}},
	}
	for _, tt := range tests {
		if got := NormalizeLegacy(c.Flags(), tt.in); !cmp.Equal(got, tt.want) {
			t.Errorf("NormalizeLegacy(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		runE    func(*cobra.Command, []string) error
		code    int
		wantErr string
	}{
		{"ok", func(*cobra.Command, []string) error { return nil }, 0, ""},
		{"plain", func(*cobra.Command, []string) error { return errors.New("boom") }, 1, "x: boom\n"},
		{"coded", func(*cobra.Command, []string) error { return Exit(3, errors.New("bad")) }, 3, "x: bad\n"},
		{"silent", func(*cobra.Command, []string) error { return Exit(4, nil) }, 4, ""},
		{"notbuilt", NotBuilt(9), 2, "x: not built yet in this release (umlkit issue #9)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New("x", "test")
			c.RunE = tt.runE
			var stderr bytes.Buffer
			if code := run(c, nil, &stderr); code != tt.code {
				t.Errorf("run() = %d; want %d", code, tt.code)
			}
			if stderr.String() != tt.wantErr {
				t.Errorf("stderr = %q; want %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	c := New("tool ARGS", "test")
	c.RunE = func(*cobra.Command, []string) error { return nil }
	var out bytes.Buffer
	c.SetOut(&out)
	if code := run(c, []string{"--version"}, &out); code != 0 {
		t.Fatalf("--version exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "tool (umlkit) ") {
		t.Errorf("--version = %q", out.String())
	}
}
