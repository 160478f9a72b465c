package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBenchmarksWellFormed(t *testing.T) {
	bs := allBenchmarks()
	byName(bs) // panics on a duplicate name
	for _, b := range bs {
		t.Run(b.Name, func(t *testing.T) {
			if b.Doc == "" {
				t.Error("no Doc")
			}
			if len(b.Variants) < 2 || b.Variants[0].Name != "ours" {
				t.Fatalf("variants %v: want ours first and at least one other", variantNames(b))
			}
			seen := map[string]bool{}
			for _, v := range b.Variants {
				if seen[v.Name] || v.Run == nil {
					t.Errorf("variant %q: duplicate or without Run", v.Name)
				}
				seen[v.Name] = true
			}
		})
	}
}

func variantNames(b *Benchmark) []string {
	var ns []string
	for _, v := range b.Variants {
		ns = append(ns, v.Name)
	}
	return ns
}

func guestBenchNamed(t *testing.T, name string) guestBench {
	t.Helper()
	for _, g := range guestBenches {
		if g.name == name {
			return g
		}
	}
	t.Fatalf("no guest benchmark %q", name)
	return guestBench{}
}

func TestGuestRead(t *testing.T) {
	tests := []struct {
		bench, tag, out string
		want            []Metric
	}{
		{"console", "CON", "boot noise\nCON write_ns=500000000\n", []Metric{
			{"guest write 64 MiB to tty1 (con1=null)", 128, "MB/s"},
		}},
		{"hostfs", "HOSTFS", "HOSTFS find_ns=3000000 read_ns=2000000000 write_ns=250000000\n", []Metric{
			{"find over hostfs (~20k entries)", 3, "ms"},
			{"read 128 MiB from hostfs", 64, "MB/s"},
			{"write 64 MiB to hostfs (conv=fsync)", 256, "MB/s"},
		}},
		{"io", "IO", "IO write_ns=1000000000 read_ns=500000000 find_ns=7000000\n", []Metric{
			{"write 256 MiB (conv=fsync)", 256, "MB/s"},
			{"read 256 MiB", 512, "MB/s"},
			{"find / (~20k entries)", 7, "ms"},
		}},
		{"syscall", "BENCH", "BENCH getppid_ns=35.5 openclose_ns=900.0 forkexec_us=250.2\n", []Metric{
			{"getppid", 35.5, "ns"},
			{"open+close", 900, "ns"},
			{"fork+exec+wait", 250.2, "us"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.bench, func(t *testing.T) {
			read := guestBenchNamed(t, tt.bench).read
			got, err := read(guestRun{out: tt.out})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("read(%q) (-want +got):\n%s", tt.out, diff)
			}
			if _, err := read(guestRun{out: "no result\n"}); err == nil || err.Error() != "no "+tt.tag+" line in:\nno result\n" {
				t.Errorf("read without the line: err = %v; want no %s line", err, tt.tag)
			}
		})
	}
}

func TestOursVsReal(t *testing.T) {
	var paths []string
	record := func(name string) programMeasure {
		return func(_ *Env, path string) ([]Metric, error) {
			paths = append(paths, path)
			return []Metric{{name, 1, "ms"}}, nil
		}
	}
	vs := oursVsReal(tool{"a", "/usr/bin/a", record("a")}, tool{"b", "/usr/lib/b", record("b")})
	e := &Env{Bin: "/ours"}
	for i, tt := range []struct {
		variant string
		want    []string
	}{
		{"ours", []string{"/ours/a", "/ours/b"}},
		{"real", []string{"/usr/bin/a", "/usr/lib/b"}},
	} {
		paths = nil
		v := vs[i]
		ms, err := v.Run(e)
		if err != nil || v.Name != tt.variant {
			t.Fatalf("variant %d = %s, Run = %v, %v; want %s", i, v.Name, ms, err, tt.variant)
		}
		if diff := cmp.Diff(tt.want, paths); diff != "" {
			t.Errorf("%s ran (-want +got):\n%s", tt.variant, diff)
		}
		if len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "b" {
			t.Errorf("%s metrics = %v; want a's then b's", tt.variant, ms)
		}
	}

	failing := func(*Env, string) ([]Metric, error) { return nil, errors.New("boom") }
	paths = nil
	vs = oursVsReal(tool{"a", "/a", failing}, tool{"b", "/b", record("b")})
	if _, err := vs[0].Run(e); err == nil || len(paths) != 0 {
		t.Errorf("after a failing tool: err = %v, ran %v; want the error and nothing run", err, paths)
	}
}

func TestImageKeys(t *testing.T) {
	for name, want := range map[string][]string{
		"boot":    {"ours", "real"},
		"syscall": {"ours", "real"},
		"io":      {"ours", "ours-fuse", "ours-cow", "real"},
	} {
		if diff := cmp.Diff(want, guestBenchNamed(t, name).imageKeys()); diff != "" {
			t.Errorf("%s: imageKeys() (-want +got):\n%s", name, diff)
		}
	}
}

func TestAttach(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	if err := os.WriteFile(img, []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		disk diskMode
		want string
		made []string
	}{
		{asBuilt, img, nil},
		{freshCopy, img + ".run", []string{img + ".run"}},
		{cowOverCopy, img + ".cow," + img + ".run", []string{img + ".run"}},
	} {
		disk, done, err := guestVariant{disk: tt.disk}.attach(img)
		if err != nil || disk != tt.want {
			t.Fatalf("attach(%v) = %q, %v; want %q", tt.disk, disk, err, tt.want)
		}
		for _, f := range tt.made {
			if b, err := os.ReadFile(f); err != nil || string(b) != "image" {
				t.Errorf("attach(%v): %s = %q, %v; want a copy of the image", tt.disk, f, b, err)
			}
		}
		done()
		for _, f := range tt.made {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("attach(%v): %s still there after done", tt.disk, f)
			}
		}
		if _, err := os.Stat(img); err != nil {
			t.Errorf("attach(%v): image gone: %v", tt.disk, err)
		}
	}
}

func TestSetenv(t *testing.T) {
	t.Setenv("BENCH_TEST_KEEP", "1")
	os.Unsetenv("BENCH_TEST_SET")
	before := os.Environ()
	restore := setenv([]string{"BENCH_TEST_SET=a=b"})
	if got := os.Getenv("BENCH_TEST_SET"); got != "a=b" {
		t.Errorf("after setenv: BENCH_TEST_SET = %q; want a=b", got)
	}
	restore()
	if diff := cmp.Diff(before, os.Environ()); diff != "" {
		t.Errorf("environment not restored (-want +got):\n%s", diff)
	}
}

func TestLddPaths(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd1d5f0000)
	libiperf.so.0 => /lib/x86_64-linux-gnu/libiperf.so.0 (0x00007f7d3eec9000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7d3ece7000)
	libmissing.so.1 => not found
	/lib64/ld-linux-x86-64.so.2 (0x00007f7d3ef12000)
`
	want := []string{"/lib/x86_64-linux-gnu/libiperf.so.0", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if diff := cmp.Diff(want, lddPaths(out)); diff != "" {
		t.Errorf("lddPaths (-want +got):\n%s", diff)
	}
}

func TestIperfMetrics(t *testing.T) {
	report := func(bytes, secs float64) string {
		return fmt.Sprintf(`{"start": {"version": "iperf 3.12"},	"intervals": [], "end": {"sum_sent": {"seconds": %[2]g, "bytes": 1}, "sum_received": {"seconds": %[2]g, "bytes": %[1]g}}}`, bytes, secs)
	}
	out := "boot noise\r\n" +
		"IPERF-RESULT 0 " + report(3e9, 3) + "\r\n" +
		"IPERF-RESULT 1 " + report(6e9, 3) + "\r\n" +
		"[   12.3] random: crng init done\n" +
		"IPERF-RESULT 2 " + report(1.5e9, 3) + "\n" +
		"IPERF-RESULT 3 " + report(64*150e3, 3) + "\n" +
		"IPERF-DONE\n"
	got, err := iperfMetrics("vec0 raw", out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Metric{
		{"vec0 raw TCP", 1000, "MB/s"},
		{"vec0 raw TCP -P 4", 2000, "MB/s"},
		{"vec0 raw TCP -R", 500, "MB/s"},
		{"vec0 raw UDP 64B", 50, "kpps"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("iperfMetrics (-want +got):\n%s", diff)
	}

	for _, bad := range []struct{ out, want string }{
		{"IPERF-RESULT 0 " + report(3e9, 3) + "\n", "no IPERF-RESULT 1 line"},
		{"IPERF-RESULT 0 {\"error\": \"unable to connect to server: Connection refused\"}\n", "iperf3: unable to connect"},
		{"IPERF-RESULT 0 {\"start\": {\n", "iperf3 report: "},
		{"IPERF-RESULT 0 {}\n", "without end.sum_received"},
	} {
		if _, err := iperfMetrics("x", bad.out); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("iperfMetrics(%q): err = %v; want %q", bad.out, err, bad.want)
		}
	}
}

func TestIperfClientScript(t *testing.T) {
	s := iperfClientScript("10.77.9.2", "10.77.9.1")
	for _, want := range []string{
		"ifconfig $dev 10.77.9.2 ",
		"iperf3 -c 10.77.9.1 -t 3 -O 1 -i 0 --json \"$@\"",
		"run 0 \n", "run 1 -P 4\n", "run 2 -R\n", "run 3 -u -l 64 -b 0\n",
		"echo IPERF-DONE\npoweroff -f",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("iperfClientScript lacks %q:\n%s", want, s)
		}
	}
}
