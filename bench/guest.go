package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// guestBench is a benchmark that boots each kernel on a busybox image of its
// own (guestImage; both kernels lock their disks) whose /init runs a script,
// waits for a console line, and reads the metrics from the console output.
type guestBench struct {
	name, doc string
	images    string                            // name prefix of the images and their e.Vars keys: PREFIX-KEY
	script    func(e *Env, image string) string // the /init script of the image keyed image
	prepare   func(e *Env) error                // host-side setup before the images are built (optional)
	adjust    func(e *Env, img string) error    // run on each image once built (optional)
	finish    func(e *Env) error                // host-side setup after the images are built (optional)
	variants  []guestVariant
	args      []string      // kernel arguments of every guest
	marker    string        // the console text whose line ends the wait
	timeout   time.Duration // after which the guest is killed
	read      func(r guestRun) ([]Metric, error)
	// measure, if set, replaces the marker wait and read: it boots argv
	// itself (kernel is "ours" or "real").
	measure func(argv []string, kernel string) ([]Metric, error)
}

// guestVariant is one kernel booting one image, or the host running the
// script's equivalent.
type guestVariant struct {
	name   string   // the variant's name in the report
	kernel string   // "ours" or "real", as bootArgs takes it
	image  string   // the key of its image: PREFIX-image
	disk   diskMode // how the image is attached
	args   []string // kernel arguments of this variant only
	env    []string // NAME=value set in our environment around the boot (the kernel inherits it)
	// host, if set, runs on the host instead of a guest and returns output
	// that read takes like the console's.
	host func(e *Env) (string, error)
}

// diskMode says how a variant's image becomes its guest's disk.
type diskMode int

const (
	asBuilt     diskMode = iota // the image itself
	freshCopy                   // a sparse copy made before each boot and removed after it
	cowOverCopy                 // a new COW file over a fresh copy
)

// guestRun is what one boot produced.
type guestRun struct {
	out          string        // the console output
	marker, exit time.Duration // from launch to the marker line and to the exit
}

// field is one submatch of a console line: the metric it becomes and how
// its number converts.
type field struct {
	metric, unit string
	value        func(float64) float64
}

func (g guestBench) benchmark() *Benchmark {
	b := &Benchmark{Name: g.name, Doc: g.doc, Setup: g.setup}
	for _, v := range g.variants {
		b.Variants = append(b.Variants, Variant{Name: v.name, Run: g.run(v)})
	}
	return b
}

// setup builds the variants' images, between prepare and finish.
func (g guestBench) setup(e *Env) error {
	if g.prepare != nil {
		if err := g.prepare(e); err != nil {
			return err
		}
	}
	for _, key := range g.imageKeys() {
		if err := g.buildImage(e, key); err != nil {
			return err
		}
	}
	if g.finish != nil {
		return g.finish(e)
	}
	return nil
}

// imageKeys lists the images the variants boot, in the variants' order.
func (g guestBench) imageKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, v := range g.variants {
		if v.host == nil && !seen[v.image] {
			seen[v.image] = true
			keys = append(keys, v.image)
		}
	}
	return keys
}

func (g guestBench) buildImage(e *Env, key string) error {
	name := g.images + "-" + key
	img, err := guestImage(e, name, g.script(e, key))
	if err != nil {
		return err
	}
	if g.adjust != nil {
		if err := g.adjust(e, img); err != nil {
			return err
		}
	}
	e.Vars[name] = img
	return nil
}

func (g guestBench) run(v guestVariant) func(*Env) ([]Metric, error) {
	if v.host != nil {
		return func(e *Env) ([]Metric, error) {
			out, err := v.host(e)
			if err != nil {
				return nil, err
			}
			return g.read(guestRun{out: out})
		}
	}
	return func(e *Env) ([]Metric, error) { return g.boot(e, v) }
}

// boot boots v's kernel on its image once and measures the run.
func (g guestBench) boot(e *Env, v guestVariant) ([]Metric, error) {
	disk, done, err := v.attach(e.Vars[g.images+"-"+v.image])
	if err != nil {
		return nil, err
	}
	defer done()
	args := append(append([]string(nil), g.args...), v.args...)
	argv := bootArgs(e, v.kernel, disk, args...)
	if g.measure != nil {
		return g.measure(argv, v.kernel)
	}
	restore := setenv(v.env)
	marker, exit, out, err := runGuest(argv, func(l string) bool { return strings.Contains(l, g.marker) }, g.timeout)
	restore()
	if err != nil {
		return nil, err
	}
	return g.read(guestRun{out: out, marker: marker, exit: exit})
}

// attach returns the disk argument that attaches img as v.disk says, and a
// function that removes what attaching made.
func (v guestVariant) attach(img string) (disk string, done func(), err error) {
	if v.disk == asBuilt {
		return img, func() {}, nil
	}
	fresh, removeFresh, err := freshCopyOf(img)
	if err != nil || v.disk == freshCopy {
		return fresh, removeFresh, err
	}
	// A new COW file over the (unchanged) copy.
	cow := img + ".cow"
	os.Remove(cow)
	return cow + "," + fresh, func() { os.Remove(cow); removeFresh() }, nil
}

// freshCopyOf makes IMG.run, a sparse copy of img, and returns its path and
// the function that removes it.
func freshCopyOf(img string) (fresh string, remove func(), err error) {
	fresh = img + ".run"
	if out, err := exec.Command("cp", "--sparse=always", img, fresh).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("cp: %v %s", err, out)
	}
	return fresh, func() { os.Remove(fresh) }, nil
}

// setenv sets env (NAME=value) in our environment and returns the function
// that restores the environment as it was.
func setenv(env []string) (restore func()) {
	if len(env) == 0 {
		return func() {}
	}
	old := os.Environ()
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		os.Setenv(name, val)
	}
	return func() {
		os.Clearenv()
		for _, kv := range old {
			name, val, _ := strings.Cut(kv, "=")
			os.Setenv(name, val)
		}
	}
}

// fixed is a script that is the same for every image.
func fixed(script string) func(*Env, string) string {
	return func(*Env, string) string { return script }
}

// bootTimes reports the times from launch to the marker and to the exit.
func bootTimes(r guestRun) ([]Metric, error) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return []Metric{
		{"launch -> init marker", ms(r.marker), "ms"},
		{"launch -> exit", ms(r.exit), "ms"},
	}, nil
}

// consoleLine reads the metrics from the console line pattern matches,
// submatch i as fields[i]. The pattern's first word names the line in the
// error when it is missing.
func consoleLine(pattern string, fields ...field) func(guestRun) ([]Metric, error) {
	re := regexp.MustCompile(pattern)
	tag, _, _ := strings.Cut(pattern, " ")
	return func(r guestRun) ([]Metric, error) {
		m := re.FindStringSubmatch(r.out)
		if m == nil {
			return nil, fmt.Errorf("no %s line in:\n%s", tag, r.out)
		}
		ms := make([]Metric, len(fields))
		for i, f := range fields {
			v, _ := strconv.ParseFloat(m[i+1], 64)
			ms[i] = Metric{f.metric, f.value(v), f.unit}
		}
		return ms, nil
	}
}

// asIs reports a number as printed.
func asIs(v float64) float64 { return v }

// nsToMs converts nanoseconds to milliseconds.
func nsToMs(ns float64) float64 { return ns / 1e6 }

// throughput converts the nanoseconds that moving mib MiB took to MiB per
// second (which the reports have always labelled MB/s).
func throughput(mib float64) func(ns float64) float64 {
	return func(ns float64) float64 { return mib / (ns / 1e9) }
}
