package main

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/umlkit/umlkit/internal/ubd"
)

// moo: merge of a 1 GiB backing file whose COW file has 1 MiB dirty at every
// even MiB (half the sectors), as in shared/docs/baselines.md #4; ours vs
// Debian's uml_moo vs `cp --sparse=always` of the backing, inputs warm in the
// page cache, `sync` (untimed) before each run. The COW file is written by
// internal/ubd (the same layout the kernel writes). Check: the merged images
// of ours and the real tool have the same md5, new-file and in-place.

// mooSize is the size of the backing file.
const mooSize = 1 << 30

// mooMiB is the content of MiB i of the backing file (seed 1) or of the COW
// file (seed 2).
func mooMiB(seed int64, i int) []byte {
	b := make([]byte, 1<<20)
	rand.New(rand.NewSource(seed)).Read(b)
	binary.LittleEndian.PutUint64(b, uint64(i)+1)
	return b
}

func syncAll() { exec.Command("sync").Run() }

// timedSync runs cmd, then sync, and returns the command's time and the
// time including the sync (ours fsyncs its output; cp and the real tool
// leave the data in the page cache).
func timedSync(cmd *exec.Cmd) (float64, float64, error) {
	ms, err := Timed(cmd)
	if err != nil {
		return 0, 0, err
	}
	s, err := Timed(exec.Command("sync"))
	return ms, ms + s, err
}

// mooSetup writes backing.img and, through internal/ubd, cow.img over it.
func mooSetup(e *Env) error {
	t0 := time.Now()
	back := filepath.Join(e.Dir, "backing.img")
	f, err := os.Create(back)
	if err != nil {
		return err
	}
	for i := 0; i < mooSize>>20; i++ {
		if _, err := f.Write(mooMiB(1, i)); err != nil {
			return err
		}
	}
	f.Close()
	d, err := ubd.Open(ubd.Options{File: filepath.Join(e.Dir, "cow.img"), Backing: back})
	if err != nil {
		return err
	}
	for i := 0; i < mooSize>>20; i += 2 {
		if _, err := d.WriteAt(mooMiB(2, i), int64(i)<<20); err != nil {
			return err
		}
	}
	if err := d.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.Out, "setup: 1 GiB backing + COW with 512 x 1 MiB dirty in %.1f s\n", time.Since(t0).Seconds())
	return nil
}

// mergeInto times the uml_moo at bin merging cow.img into a new file out,
// then in place (-d) into a fresh copy of the backing file, out.inplace.
func mergeInto(out string) programMeasure {
	return func(e *Env, bin string) ([]Metric, error) {
		os.Remove(filepath.Join(e.Dir, out))
		syncAll()
		ms, mss, err := timedSync(exec.Command(bin, filepath.Join(e.Dir, "cow.img"), filepath.Join(e.Dir, out)))
		if err != nil {
			return nil, err
		}
		// In place into a fresh copy of the backing file (copy untimed).
		cp := filepath.Join(e.Dir, out+".inplace")
		os.Remove(cp)
		if b, err := exec.Command("cp", "-p", "--sparse=always", filepath.Join(e.Dir, "backing.img"), cp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cp -p: %v %s", err, b)
		}
		syncAll()
		ms2, ms2s, err := timedSync(exec.Command(bin, "-d", "-b", cp, filepath.Join(e.Dir, "cow.img")))
		if err != nil {
			return nil, err
		}
		return []Metric{{"merge to new file", ms, "ms"}, {"merge to new file + sync", mss, "ms"},
			{"merge -d in place", ms2, "ms"}, {"merge -d in place + sync", ms2s, "ms"}}, nil
	}
}

// copyBacking times `cp --sparse=always` of the backing file, the floor a
// merge to a new file is compared with.
func copyBacking(e *Env) ([]Metric, error) {
	out := filepath.Join(e.Dir, "cp.img")
	os.Remove(out)
	syncAll()
	ms, mss, err := timedSync(exec.Command("cp", "--sparse=always", filepath.Join(e.Dir, "backing.img"), out))
	if err != nil {
		return nil, err
	}
	return []Metric{{"merge to new file", ms, "ms"}, {"merge to new file + sync", mss, "ms"}}, nil
}

// mooCheck compares the md5 of the images ours and the real uml_moo merged.
func mooCheck(e *Env) error {
	var sums []string
	for _, n := range []string{"ours.img", "real.img", "ours.img.inplace", "real.img.inplace"} {
		s, err := md5File(filepath.Join(e.Dir, n))
		if err != nil {
			return err
		}
		sums = append(sums, s)
	}
	fmt.Fprintf(e.Out, "merged md5: ours %s, real %s; in place: ours %s, real %s\n", sums[0], sums[1], sums[2], sums[3])
	for _, s := range sums[1:] {
		if s != sums[0] {
			return fmt.Errorf("merged images differ")
		}
	}
	return nil
}

// md5File returns the hex md5 of the file at path.
func md5File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
