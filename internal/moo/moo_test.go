//go:build linux

package moo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/ubd"
)

func TestParseMoo(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want mooArgs
		ok   bool
	}{
		{[]string{"c", "n"}, mooArgs{names: []string{"c", "n"}}, true},
		{[]string{"-d", "c"}, mooArgs{inPlace: true, names: []string{"c"}}, true},
		{[]string{"-d", "-b", "B", "c"}, mooArgs{inPlace: true, backing: "B", names: []string{"c"}}, true},
		{[]string{"-b", "B", "-d", "c"}, mooArgs{inPlace: true, backing: "B", names: []string{"c"}}, true},
		{[]string{"-b", "B", "c", "n"}, mooArgs{backing: "B", names: []string{"c", "n"}}, true},
		{[]string{"--", "-d", "n"}, mooArgs{names: []string{"-d", "n"}}, true},
		{[]string{"c", "-d"}, mooArgs{names: []string{"c", "-d"}}, true}, // options only before names
		{[]string{"--info", "c"}, mooArgs{info: true, names: []string{"c"}}, true},
		{[]string{"--info", "--json", "-b", "B", "c"}, mooArgs{info: true, json: true, backing: "B", names: []string{"c"}}, true},
		{[]string{"-d"}, mooArgs{inPlace: true, names: []string{}}, false},
		{[]string{"-d", "c", "n"}, mooArgs{inPlace: true, names: []string{"c", "n"}}, false},
		{[]string{"c"}, mooArgs{names: []string{"c"}}, false},
		{[]string{"-b"}, mooArgs{}, false},
		{[]string{"--json", "c", "n"}, mooArgs{json: true, names: []string{"c", "n"}}, false},
		{nil, mooArgs{names: []string{}}, false},
	} {
		got, ok := parseMoo(tt.args)
		if got.names == nil {
			got.names = []string{}
		}
		if tt.want.names == nil {
			tt.want.names = []string{}
		}
		if ok != tt.ok || (ok && !cmp.Equal(got, tt.want, cmp.AllowUnexported(mooArgs{}))) {
			t.Errorf("parseMoo(%q) = %+v, %v; want %+v, %v", tt.args, got, ok, tt.want, tt.ok)
		}
	}
}

func run(f func(Stdio) int) (string, string, int) {
	var out, errb bytes.Buffer
	code := f(Stdio{Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

func TestUsageTexts(t *testing.T) {
	_, e, code := run(func(s Stdio) int { return Mkcow("uml_mkcow", nil, s) })
	want := "uml_mkcow usage: \n\tuml_mkcow [-f] <COW file> <backing file>\n\t-f forces overwrite of an existing COW file\n"
	if e != want || code != 2 {
		t.Errorf("uml_mkcow: %q, %d; want %q, 2", e, code, want)
	}
	_, e, code = run(func(s Stdio) int { return Moo(context.Background(), "/x/uml_moo", []string{"a"}, s) })
	if !strings.HasPrefix(e, "/x/uml_moo usage:\n\t/x/uml_moo [ -b <actual backing file> ] <COW file> <new backing file>\n") ||
		!strings.HasSuffix(e, "/x/uml_moo supports version 1,2 and 3 COW files.\n") || code != 1 {
		t.Errorf("uml_moo usage: %q, %d", e, code)
	}
	o, _, code := run(func(s Stdio) int { return Moo(context.Background(), "uml_moo", []string{"--help"}, s) })
	if code != 0 || !strings.Contains(o, "--info") {
		t.Errorf("uml_moo --help: %q, %d", o, code)
	}
}

func TestMkcowAndMooInProcess(t *testing.T) {
	dir := t.TempDir()
	back := filepath.Join(dir, "b.img")
	os.WriteFile(back, bytes.Repeat([]byte("umlkit"), 10000), 0o644)
	os.Chtimes(back, time.Unix(1700000000, 0), time.Unix(1700000000, 0))
	c := filepath.Join(dir, "c.cow")
	if o, e, code := run(func(s Stdio) int { return Mkcow("uml_mkcow", []string{c, back}, s) }); code != 0 || o != "" || e != "" {
		t.Fatalf("uml_mkcow: %q %q %d", o, e, code)
	}
	if _, e, code := run(func(s Stdio) int { return Mkcow("uml_mkcow", []string{c, back}, s) }); code != 1 || e != "open COW file: File exists\n" {
		t.Errorf("uml_mkcow existing: %q %d", e, code)
	}
	d, err := ubd.Open(ubd.Options{File: c})
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt(bytes.Repeat([]byte{7}, 1024), 2048)
	d.Close()
	out := filepath.Join(dir, "out.img")
	if o, e, code := run(func(s Stdio) int { return Moo(context.Background(), "uml_moo", []string{c, out}, s) }); code != 0 || o != "" || e != "" {
		t.Fatalf("uml_moo: %q %q %d", o, e, code)
	}
	got, _ := os.ReadFile(out)
	want := bytes.Repeat([]byte("umlkit"), 10000)[:59904]
	copy(want[2048:], bytes.Repeat([]byte{7}, 1024))
	if !bytes.Equal(got, want) {
		t.Error("merged image wrong")
	}
	var errb bytes.Buffer
	code := Moo(context.Background(), "uml_moo", []string{c, filepath.Join(dir, "out2.img")}, Stdio{Stdout: &bytes.Buffer{}, Stderr: &errb, StderrTTY: true})
	if code != 0 || !strings.Contains(errb.String(), "(100%)") || !strings.HasSuffix(errb.String(), "\n") {
		t.Errorf("progress on a terminal: %q, %d", errb.String(), code)
	}
	o, _, code := run(func(s Stdio) int { return Moo(context.Background(), "uml_moo", []string{"--info", "--json", c}, s) })
	if code != 0 || !strings.Contains(o, `"dirty_sectors": 2`) {
		t.Errorf("--info --json: %q %d", o, code)
	}
}
