package e2e

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/cow"
	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/ubd"
	"github.com/umlkit/umlkit/tests/harness"
)

func realTool(t *testing.T, name string) string {
	t.Helper()
	return testutil.Peer(t, name, "uml-utilities")
}

// writeBacking writes size bytes of deterministic data with a fixed mtime.
func writeBacking(t *testing.T, path string, size int, seed int64) []byte {
	t.Helper()
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1700000000, 0)
	os.Chtimes(path, mt, mt)
	return b
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cpPreserve(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-p", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// TestIntegrationMkcowMatchesReal runs our uml_mkcow and Debian's with the same argv in
// the same directory and compares stdout, stderr, exit status and the COW
// file written.
func TestIntegrationMkcowMatchesReal(t *testing.T) {
	real := realTool(t, "uml_mkcow")
	ours := harness.Bin(t, "uml_mkcow")
	dir := t.TempDir()
	writeBacking(t, filepath.Join(dir, "back.img"), 51200+100, 1)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("sub", filepath.Join(dir, "link"))
	writeBacking(t, filepath.Join(dir, "sub", "b2.img"), 4096, 2)
	long := strings.Repeat("a", 4096)
	for _, tt := range []struct {
		name     string
		args     []string
		existing bool // c.cow exists (a fresh COW of back.img) before the run
	}{
		{"no args", nil, false},
		{"one name", []string{"c.cow"}, false},
		{"only -f", []string{"-f"}, false},
		{"-f one name", []string{"-f", "c.cow"}, false},
		{"create", []string{"c.cow", "back.img"}, false},
		{"create, extra argument ignored", []string{"c.cow", "back.img", "extra"}, false},
		{"absolute backing", []string{"c.cow", filepath.Join(dir, "back.img")}, false},
		{"symlinked directory", []string{"c.cow", "link/b2.img"}, false},
		{"dot-dot", []string{"c.cow", "sub/../back.img"}, false},
		{"exists", []string{"c.cow", "back.img"}, true},
		{"-f over existing", []string{"-f", "c.cow", "back.img"}, true},
		{"-f not first", []string{"c.cow", "-f", "back.img"}, false},
		{"missing backing", []string{"c.cow", "nothere.img"}, false},
		{"missing backing dir", []string{"c.cow", "/nonexistent/x"}, false},
		{"name too long", []string{"c.cow", long}, false},
		{"COW in missing dir", []string{"nodir/c.cow", "back.img"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var res [2]harness.Result
			var files [2][]byte
			for i, bin := range []string{real, ours} {
				cowPath := filepath.Join(dir, "c.cow")
				os.Remove(cowPath)
				if tt.existing {
					if err := ubd.CreateCOW(cowPath, filepath.Join(dir, "back.img"), ubd.CreateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				res[i] = harness.RunIn(t, dir, bin, "uml_mkcow", tt.args...)
				files[i], _ = os.ReadFile(cowPath)
				if i == 1 && res[1].Code != 0 && !tt.existing && len(files[1]) > 0 {
					t.Errorf("ours left a COW file behind after failing")
				}
				os.Remove(cowPath)
			}
			if res[0] != res[1] {
				t.Errorf("uml_mkcow %q:\nreal %+v\nours %+v", tt.args, res[0], res[1])
			}
			// The real tool leaves an empty file behind on failure; ours does not.
			if res[0].Code == 0 && !bytes.Equal(files[0], files[1]) {
				t.Errorf("uml_mkcow %q: COW files differ (real %d bytes, ours %d bytes)", tt.args, len(files[0]), len(files[1]))
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// mkDirtyCOW makes a COW over back with our ubd and dirties a few runs,
// some of them zeros; it returns the expected merged image.
func mkDirtyCOW(t *testing.T, cowPath, back string, data []byte) []byte {
	t.Helper()
	d, err := ubd.Open(ubd.Options{File: cowPath, Backing: back})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	model := make([]byte, d.Size())
	copy(model, data)
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 30; i++ {
		off := rng.Int63n(d.Size()) / 512 * 512
		p := make([]byte, min(int64(rng.Intn(40)+1)*512, d.Size()-off))
		if i%4 != 0 {
			rng.Read(p)
		}
		if _, err := d.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], p)
	}
	if _, err := d.WriteAt(make([]byte, 512), d.Size()-512); err != nil { // zero last sector
		t.Fatal(err)
	}
	copy(model[d.Size()-512:], make([]byte, 512))
	return model[:len(data)/512*512]
}

// TestIntegrationMooMatchesReal merges the same COW files with our uml_moo and Debian's,
// both as a new image and in place, and compares the results; the COW files
// are v3 (ours), and hand-built v1, v2 and broken-v3.
func TestIntegrationMooMatchesReal(t *testing.T) {
	real := realTool(t, "uml_moo")
	ours := harness.Bin(t, "uml_moo")
	dir := t.TempDir()
	back := filepath.Join(dir, "back.img")
	data := writeBacking(t, back, 2<<20+300, 5)
	v3 := filepath.Join(dir, "v3.cow")
	want := mkDirtyCOW(t, v3, back, data)

	// Legacy layouts: the same dirty sectors, stored by hand (cow.md §2).
	dirty := map[int64][]byte{0: bytes.Repeat([]byte{0xA1}, 512), 17: make([]byte, 512), 4000: bytes.Repeat([]byte{0xC3}, 512), 4095: bytes.Repeat([]byte{0xD4}, 512)}
	legacyWant := append([]byte(nil), data[:len(data)/512*512]...)
	for s, b := range dirty {
		copy(legacyWant[s*512:], b)
	}
	cases := map[string][]byte{v3: want}
	for _, h := range []cow.Header{
		{Version: 1, BackingFile: back, Mtime: 1700000000, Size: uint64(len(data)), SectorSize: 512, Alignment: 512},
		{Version: 2, BackingFile: back, Mtime: 1700000000, Size: uint64(len(data)), SectorSize: 512, Alignment: 512},
		{Version: 3, Broken: true, BackingFile: back, Mtime: 1700000000, Size: uint64(len(data)), SectorSize: 512, Alignment: 4096},
	} {
		name := filepath.Join(dir, fmt.Sprintf("v%d-broken%v.cow", h.Version, h.Broken))
		writeLegacy(t, name, &h, dirty)
		cases[name] = legacyWant
	}
	for c, want := range cases {
		t.Run(filepath.Base(c), func(t *testing.T) {
			rOut, oOut := filepath.Join(dir, "real.out"), filepath.Join(dir, "ours.out")
			r := harness.RunIn(t, dir, real, "uml_moo", c, rOut)
			o := harness.RunIn(t, dir, ours, "uml_moo", c, oOut)
			if r != o {
				t.Errorf("merge: real %+v, ours %+v", r, o)
			}
			rb, ob := readFile(t, rOut), readFile(t, oOut)
			if !bytes.Equal(rb, ob) || !bytes.Equal(ob, want) {
				t.Errorf("merged images differ: real %x, ours %x, model %x", md5.Sum(rb), md5.Sum(ob), md5.Sum(want))
			}
			// internal/ubd reads the COW file as the real merge wrote it.
			d, err := ubd.Open(ubd.Options{File: c, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(rb))
			d.ReadAt(got, 0)
			d.Close()
			if !bytes.Equal(got, rb) {
				t.Error("internal/ubd reads differ from the real merge")
			}
			// In place, on identical copies of the backing file; ours takes
			// the options in the real tool's order and in the other one.
			rCopy, oCopy := filepath.Join(dir, "rcopy.img"), filepath.Join(dir, "ocopy.img")
			cpPreserve(t, back, rCopy)
			cpPreserve(t, back, oCopy)
			r = harness.RunIn(t, dir, real, "uml_moo", "-d", "-b", rCopy, c)
			o = harness.RunIn(t, dir, ours, "uml_moo", "-b", oCopy, "-d", c)
			if r != o {
				t.Errorf("merge -d: real %+v, ours %+v", r, o)
			}
			if !bytes.Equal(readFile(t, rCopy), readFile(t, oCopy)) {
				t.Error("in-place merges differ")
			}
			os.Remove(rOut)
			os.Remove(oOut)
		})
	}
}

func writeLegacy(t *testing.T, path string, h *cow.Header, dirty map[int64][]byte) {
	t.Helper()
	raw, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteAt(raw, 0)
	bm := make([]byte, h.BitmapLen())
	for s, b := range dirty {
		cow.SetDirty(bm, s)
		f.WriteAt(b, h.DataOffset()+s*int64(h.SectorSize))
	}
	f.WriteAt(bm, h.BitmapOffset())
	f.Truncate(h.FileLen())
}

// TestIntegrationMooBadInputMatchesReal: usage errors and every bad-input case give the
// real tool's messages and status, and leave no output behind.
func TestIntegrationMooBadInputMatchesReal(t *testing.T) {
	real := realTool(t, "uml_moo")
	ours := harness.Bin(t, "uml_moo")
	dir := t.TempDir()
	back := filepath.Join(dir, "back.img")
	writeBacking(t, back, 51200, 9)
	good := filepath.Join(dir, "good.cow")
	if err := ubd.CreateCOW(good, back, ubd.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := readFile(t, good)
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	zero := put("zero.img", make([]byte, 5000))
	short := put("short.cow", []byte("OOO"))
	v3short := put("v3short.cow", raw[:4000])
	v3eight := put("v3eight.cow", raw[:8])
	badver := put("badver.cow", append([]byte("OOOM\x00\x00\x00\x07"), raw[8:]...))
	v2short := put("v2short.cow", append([]byte("OOOM\x00\x00\x00\x02"), raw[8:4000]...))
	v1short := put("v1short.cow", append([]byte("MOOO\x01\x00\x00\x00"), raw[8:200]...))
	other := filepath.Join(dir, "other.img")
	writeBacking(t, other, 51712, 10)
	touched := filepath.Join(dir, "touched.img")
	writeBacking(t, touched, 51200, 9)
	os.Chtimes(touched, time.Unix(1700000500, 0), time.Unix(1700000500, 0))
	out := filepath.Join(dir, "out.img")
	for _, args := range [][]string{
		{}, {"only.cow"}, {"-d", "a", "b"}, {"a", "b", "c"}, {"-b"}, {"-b", back, good},
		{filepath.Join(dir, "missing.cow"), out},
		{zero, out}, {short, out}, {v3short, out}, {v3eight, out}, {badver, out}, {v2short, out}, {v1short, out},
		{"-b", filepath.Join(dir, "nob.img"), good, out},
		{"-b", other, good, out},
		{"-b", touched, good, out},
		{"-d", "-b", touched, good},
		{good, filepath.Join(dir, "nodir", "out.img")},
		{"-b", filepath.Join(dir, strings.Repeat("x", 5000)), good, out},
	} {
		r := harness.RunIn(t, dir, real, "uml_moo", args...)
		os.Remove(out)
		o := harness.RunIn(t, dir, ours, "uml_moo", args...)
		if r != o {
			t.Errorf("uml_moo %q:\nreal %+v\nours %+v", args, r, o)
		}
		if o.Code == 0 {
			t.Errorf("uml_moo %q succeeded", args)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("uml_moo %q left %s behind", args, out)
		}
	}
	// A truncated bitmap: the real tool says "Reading COW bitmap: Success"
	// (a short read sets no errno) and leaves an empty output; ours names
	// the problem and leaves nothing.
	tb := put("tbitmap.cow", raw[:8192+5])
	if o := harness.RunIn(t, dir, ours, "uml_moo", tb, out); o.Code != 1 || o.Stderr != "Reading COW bitmap: COW bitmap is truncated\n" {
		t.Errorf("truncated bitmap: %+v", o)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("truncated bitmap: output left behind")
	}
	// The real tool crashes on a lone -d (exit 139); the spec says usage.
	// -b X -d COW: the real tool opens a COW file named "-d"; ours merges.
	usage := harness.RunIn(t, dir, real, "uml_moo")
	if o := harness.RunIn(t, dir, ours, "uml_moo", "-d"); o != usage {
		t.Errorf("uml_moo -d = %+v; want the usage error %+v", o, usage)
	}
	cp := filepath.Join(dir, "copy.img")
	cpPreserve(t, back, cp)
	if o := harness.RunIn(t, dir, ours, "uml_moo", "-b", cp, "-d", good); o.Code != 0 {
		t.Errorf("uml_moo -b X -d COW: %+v", o)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), ".uml_moo-d") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestMooInfo checks the --info view in both forms.
func TestMooInfo(t *testing.T) {
	ours := harness.Bin(t, "uml_moo")
	dir := t.TempDir()
	back := filepath.Join(dir, "back.img")
	data := writeBacking(t, back, 51200, 11)
	c := filepath.Join(dir, "i.cow")
	mkDirtyCOW(t, c, back, data)
	o := harness.RunIn(t, dir, ours, "uml_moo", "--info", c)
	if o.Code != 0 || !strings.Contains(o.Stdout, "backing file:   "+back+"\n") || !strings.Contains(o.Stdout, "backing check:  ok\n") {
		t.Errorf("--info: %+v", o)
	}
	o = harness.RunIn(t, dir, ours, "uml_moo", "--info", "--json", c)
	if o.Code != 0 || !strings.Contains(o.Stdout, `"bitmap_offset": 8192`) || !strings.Contains(o.Stdout, `"backing_status": "ok"`) {
		t.Errorf("--info --json: %+v", o)
	}
	o = harness.RunIn(t, dir, ours, "uml_moo", "--info", back)
	if o.Code != 1 || o.Stderr != "Reading COW header failed\n" {
		t.Errorf("--info on a non-COW file: %+v", o)
	}
}

// TestIntegrationCOWInteropRealUML boots the real kernel on ubd0=OURCOW,BACKING
// (OURCOW made by our uml_mkcow) and ubd1=KCOW,DATA (KCOW created by the
// kernel); the guest writes files and raw sectors and powers off. Then our
// uml_moo and the real one merge both, the outputs must be byte-identical and
// fsck-clean, and internal/ubd must read each COW exactly as merged.
func TestIntegrationCOWInteropRealUML(t *testing.T) {
	realMoo := realTool(t, "uml_moo")
	realMkcow := realTool(t, "uml_mkcow")
	e2fsck := testutil.Peer(t, "e2fsck", "e2fsprogs")
	ours := harness.Bin(t, "uml_moo")
	oursMkcow := harness.Bin(t, "uml_mkcow")
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{SizeMB: 32, Init: `
mount -o remount,rw /
echo cow-interop > /hello.txt
mkdir -p /data
dd if=/dev/urandom of=/data/blob bs=1k count=700 2>/dev/null
md5sum /data/blob > /data/blob.md5
dd if=/dev/urandom of=/dev/ubdb bs=512 seek=5 count=1 2>/dev/null
dd if=/dev/urandom of=/dev/ubdb bs=4096 seek=100 count=33 2>/dev/null
sync
echo COW-WRITES-DONE
mount -o remount,ro /
sync
poweroff -f`})
	mt := time.Unix(1700000000, 0)
	os.Chtimes(img, mt, mt)
	dataImg := filepath.Join(dir, "data.img")
	writeBacking(t, dataImg, 1<<20, 12)

	ourCOW := filepath.Join(dir, "root.cow")
	if r := harness.RunIn(t, dir, oursMkcow, "uml_mkcow", ourCOW, img); r.Code != 0 {
		t.Fatalf("our uml_mkcow: %+v", r)
	}
	realCOW := filepath.Join(dir, "real.cow")
	harness.RunIn(t, dir, realMkcow, "uml_mkcow", realCOW, img)
	if !bytes.Equal(readFile(t, ourCOW), readFile(t, realCOW)) {
		t.Fatal("our uml_mkcow's COW file differs from the real one's")
	}
	kCOW := filepath.Join(dir, "kernel.cow")
	g := harness.BootRealUML(t, ourCOW+","+img, "ubd1="+kCOW+","+dataImg, "umid=cowtest")
	if err := g.WaitOutput("COW-WRITES-DONE", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Wait(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.Output(), `Creating "`+kCOW+`" as COW file for "`+dataImg+`"`) {
		t.Errorf("kernel did not announce creating %s", kCOW)
	}
	for _, c := range []string{ourCOW, kCOW} {
		rOut, oOut := c+".real.img", c+".ours.img"
		if r := harness.RunIn(t, dir, realMoo, "uml_moo", c, rOut); r.Code != 0 {
			t.Fatalf("real uml_moo %s: %+v", c, r)
		}
		if o := harness.RunIn(t, dir, ours, "uml_moo", c, oOut); o.Code != 0 {
			t.Fatalf("our uml_moo %s: %+v", c, o)
		}
		rb, ob := readFile(t, rOut), readFile(t, oOut)
		if !bytes.Equal(rb, ob) {
			t.Errorf("%s: merged images differ (real %x, ours %x)", filepath.Base(c), md5.Sum(rb), md5.Sum(ob))
		}
		d, err := ubd.Open(ubd.Options{File: c, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(rb))
		d.ReadAt(got, 0)
		d.Close()
		if !bytes.Equal(got, rb) {
			t.Errorf("%s: internal/ubd reads differ from the real merge", filepath.Base(c))
		}
		in, err := ubd.ReadInfo(c, "", nil)
		if err != nil || in.DirtySectors == 0 {
			t.Errorf("%s: ReadInfo = %+v, %v; want dirty sectors", filepath.Base(c), in, err)
		}
	}
	if out, err := exec.Command(e2fsck, "-fn", ourCOW+".ours.img").CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of our merge: %v\n%s", err, out)
	}
	// The guest's file is in the merged image.
	if out, err := exec.Command("debugfs", "-R", "cat /hello.txt", ourCOW+".ours.img").Output(); err != nil || string(out) != "cow-interop\n" {
		t.Errorf("debugfs cat /hello.txt = %q, %v", out, err)
	}
	// In place on a copy, with ours, equals the new-image merge.
	cp := filepath.Join(dir, "copy.img")
	cpPreserve(t, img, cp)
	if o := harness.RunIn(t, dir, ours, "uml_moo", "-d", "-b", cp, ourCOW); o.Code != 0 {
		t.Fatalf("our uml_moo -d: %+v", o)
	}
	if !bytes.Equal(readFile(t, cp), readFile(t, ourCOW+".ours.img")) {
		t.Error("in-place merge differs from the new-image merge")
	}
}

// TestIntegrationMooDiskFull: a merge onto a full file system fails with one
// line and leaves nothing behind.
func TestIntegrationMooDiskFull(t *testing.T) {
	testutil.RequireRoot(t)
	ours := harness.Bin(t, "uml_moo")
	dir := t.TempDir()
	back := filepath.Join(dir, "back.img")
	data := writeBacking(t, back, 4<<20, 13)
	c := filepath.Join(dir, "f.cow")
	mkDirtyCOW(t, c, back, data)
	small := filepath.Join(dir, "small")
	os.Mkdir(small, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small).CombinedOutput(); err != nil {
		testutil.Skip(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", small).Run()
	o := harness.RunIn(t, dir, ours, "uml_moo", c, filepath.Join(small, "out.img"))
	if o.Code != 1 || o.Stderr != "Writing data: No space left on device\n" || o.Stdout != "" {
		t.Errorf("merge onto a full disk: %+v", o)
	}
	if ents, _ := os.ReadDir(small); len(ents) != 0 {
		t.Errorf("left behind on the full disk: %v", ents)
	}
}

// TestIntegrationUBDLockInterop: a disk held by internal/ubd is refused by
// the real kernel (its F_SETLK conflicts with our OFD lock), and a COW held
// by a running real UML is refused by uml_moo.
func TestIntegrationUBDLockInterop(t *testing.T) {
	ours := harness.Bin(t, "uml_moo")
	dir := t.TempDir()
	img := harness.BusyboxImage(t, dir, harness.Image{SizeMB: 16, Init: "echo LOCK-GUEST-UP\nsleep 30\npoweroff -f"})
	d, err := ubd.Open(ubd.Options{File: img})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	g := harness.BootRealUML(t, img, "umid=cowlock1")
	if err := g.WaitOutput("F_SETLK failed, file already locked by pid", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	d.Close()
	t.Logf("lock refused after %v", time.Since(t0))
	syscall.Kill(-g.Cmd.Process.Pid, syscall.SIGKILL) // it would panic: no root fs
	g.Wait(30 * time.Second)
	t.Logf("killed after %v", time.Since(t0))
	// The other way round: the real kernel holds a COW file.
	c := filepath.Join(dir, "held.cow")
	g = harness.BootRealUML(t, c+","+img, "umid=cowlock2")
	if err := g.WaitOutput("LOCK-GUEST-UP", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("second guest up after %v", time.Since(t0))
	o := harness.RunIn(t, dir, ours, "uml_moo", c, filepath.Join(dir, "out.img"))
	if o.Code != 1 || !strings.Contains(o.Stderr, "already locked by pid") {
		t.Errorf("uml_moo on a COW in use: %+v", o)
	}
	if _, err := ubd.Open(ubd.Options{File: c}); err == nil {
		t.Error("ubd.Open of a COW in use by a real UML succeeded")
	}
}
