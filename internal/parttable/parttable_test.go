package parttable

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seeds from the tables and golden files")

// memDisk is a disk in memory.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(m)) {
		return 0, fmt.Errorf("write beyond the disk")
	}
	return copy(m[off:], p), nil
}

func (m memDisk) sectors() uint64 { return uint64(len(m)) / SectorSize }

// goldens caches the unpacked golden disks (4 MiB each; gzip is slow
// under the race detector).
var goldens = struct {
	sync.Mutex
	m map[string]memDisk
}{m: map[string]memDisk{}}

func readGolden(t testing.TB, name string) memDisk {
	t.Helper()
	goldens.Lock()
	defer goldens.Unlock()
	if d, ok := goldens.m[name]; ok {
		return bytes.Clone(d)
	}
	f, err := os.Open(filepath.Join("testdata", name+".img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	goldens.m[name] = b
	return bytes.Clone(b)
}

func goldenNames(t testing.TB) []string {
	m, err := filepath.Glob(filepath.Join("testdata", "*.want"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	var names []string
	for _, p := range m {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".want"))
	}
	return names
}

// knownDifferences are /proc/partitions lines of linux.uml that parttable
// deliberately does not reproduce (see the package comment).
var knownDifferences = map[string]map[string]string{
	"gpt-startgtend": {"9223372036854772358 ubdb2": "596 ubdb2"},
}

// maxPrintk is how much of a log line linux.uml prints (a longer listing
// is cut): longer golden lines are compared as prefixes.
const maxPrintk = 980

// TestGolden compares Read with what linux.uml found on the same disks.
func TestGolden(t *testing.T) {
	for _, name := range goldenNames(t) {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", name+".want"))
			if err != nil {
				t.Fatal(err)
			}
			wantLog, wantProc, _ := strings.Cut(strings.TrimSuffix(string(b), "\n"), "--")
			d := readGolden(t, name)
			tab, err := Read(d, d.sectors())
			if err != nil {
				t.Fatal(err)
			}
			gotLog := tab.LogLines("ubdb")
			wl := lines(wantLog)
			if len(wl) != len(gotLog) {
				t.Errorf("log lines:\n%s", cmp.Diff(wl, gotLog))
			} else {
				for i := range wl {
					g := gotLog[i]
					if len(wl[i]) >= maxPrintk && strings.HasPrefix(g, wl[i]) {
						continue
					}
					if g != wl[i] {
						t.Errorf("log line %d = %q; want %q", i, g, wl[i])
					}
				}
			}
			var gotProc []string
			for _, p := range tab.Parts {
				gotProc = append(gotProc, fmt.Sprintf("%d %s", p.Sectors/2, PartName("ubdb", p.Number)))
			}
			wp := lines(wantProc)
			for i, l := range wp {
				if r, ok := knownDifferences[name][l]; ok {
					wp[i] = r
				}
			}
			if diff := cmp.Diff(wp, gotProc); diff != "" {
				t.Errorf("/proc/partitions (-linux.uml +ours):\n%s", diff)
			}
			for _, p := range tab.Parts {
				if p.Start >= d.sectors() || p.Sectors == 0 || p.Sectors > d.sectors()-p.Start {
					t.Errorf("partition %+v is not inside the disk of %d sectors", p, d.sectors())
				}
			}
		})
	}
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestKinds(t *testing.T) {
	for name, want := range map[string]Kind{"dos-logical": DOS, "gpt-holes": GPT, "dos-nosig": None, "gpt-badprimary": None, "dos-fat": DOS, "gpt-hybrid": GPT} {
		d := readGolden(t, name)
		tab, err := Read(d, d.sectors())
		if err != nil {
			t.Fatal(err)
		}
		if tab.Kind != want {
			t.Errorf("%s: Kind = %q; want %q", name, tab.Kind, want)
		}
	}
}

func guid(b byte) [16]byte {
	var g [16]byte
	for i := range g {
		g[i] = b + byte(i)
	}
	return g
}

var linuxGUID = [16]byte{0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4}

// TestWriteRead: tables made by the encoders read back as written.
func TestWriteRead(t *testing.T) {
	type part struct {
		n           int
		start, size uint64
	}
	tests := []struct {
		name    string
		sectors uint64
		write   func(memDisk) error
		kind    Kind
		want    []part
		listing string
	}{
		{
			name: "gpt", sectors: 8192, kind: GPT,
			write: func(d memDisk) error {
				return WriteGPT(d, 8192, guid(1), []GPTEntry{
					{TypeGUID: linuxGUID, UUID: guid(2), First: 2048, Last: 4095, Name: "root"},
					{},
					{TypeGUID: linuxGUID, UUID: guid(3), First: 4096, Last: 8000, Name: "data"},
				})
			},
			want:    []part{{1, 2048, 2048}, {3, 4096, 3905}},
			listing: " ubdb: ubdb1 ubdb3",
		},
		{
			name: "gpt-200", sectors: 1 << 16, kind: GPT,
			write: func(d memDisk) error {
				e := make([]GPTEntry, 200)
				e[199] = GPTEntry{TypeGUID: linuxGUID, First: 40000, Last: 40999}
				return WriteGPT(d, 1<<16, guid(1), e)
			},
			want:    []part{{200, 40000, 1000}},
			listing: " ubdb: ubdb200",
		},
		{
			name: "dos", sectors: 8192, kind: DOS,
			write: func(d memDisk) error {
				return WriteDOS(d, 0xdeadbeef, [4]MBREntry{
					{Boot: 0x80, Type: TypeLinux, Start: 64, Sectors: 1000},
					{Type: TypeExtendedLBA, Start: 2000, Sectors: 4000},
					{},
					{Type: TypeLinuxSwap, Start: 7000, Sectors: 1192},
				}, []MBREntry{
					{Type: TypeLinux, Start: 2001, Sectors: 999},
					{Type: TypeFAT32LBA, Start: 3001, Sectors: 1000},
					{Type: TypeLinux, Start: 5000, Sectors: 1000},
				})
			},
			want:    []part{{1, 64, 1000}, {2, 2000, 2}, {4, 7000, 1192}, {5, 2001, 999}, {6, 3001, 1000}, {7, 5000, 1000}},
			listing: " ubdb: ubdb1 ubdb2 < ubdb5 ubdb6 ubdb7 > ubdb4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := make(memDisk, tt.sectors*SectorSize)
			if err := tt.write(d); err != nil {
				t.Fatal(err)
			}
			tab, err := Read(d, tt.sectors)
			if err != nil {
				t.Fatal(err)
			}
			if tab.Kind != tt.kind {
				t.Errorf("Kind = %q; want %q", tab.Kind, tt.kind)
			}
			var got []part
			for _, p := range tab.Parts {
				got = append(got, part{p.Number, p.Start, p.Sectors})
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(part{})); diff != "" {
				t.Errorf("partitions (-want +got):\n%s", diff)
			}
			if l := tab.Listing("ubdb"); l != tt.listing {
				t.Errorf("Listing = %q; want %q", l, tt.listing)
			}
			if tt.kind == GPT && len(tab.LogLines("ubdb")) != 1 {
				t.Errorf("a GPT written whole warns: %q", tab.LogLines("ubdb"))
			}
		})
	}
}

func TestPartName(t *testing.T) {
	for in, want := range map[[2]string]string{{"ubdb", "3"}: "ubdb3", {"loop0", "1"}: "loop0p1", {"nvme0n1", "12"}: "nvme0n1p12"} {
		n, _ := strconv.Atoi(in[1])
		if got := PartName(in[0], n); got != want {
			t.Errorf("PartName(%q, %d) = %q; want %q", in[0], n, got, want)
		}
	}
}

// A reader whose reads fail makes Read fail; one that is shorter than the
// disk size it was given reads as zeros.
func TestReadErrors(t *testing.T) {
	if _, err := Read(errReader{}, 100); err == nil {
		t.Error("Read over a failing reader succeeded")
	}
	d := readGolden(t, "dos-logical")
	tab, err := Read(memDisk(d[:4096]), d.sectors())
	if err != nil || tab.Kind != DOS {
		t.Errorf("Read of a short reader = %v, %v", tab, err)
	}
	if _, err := Read(d, 1<<62); err != ErrTooLarge {
		t.Errorf("Read of 2^62 sectors = %v; want ErrTooLarge", err)
	}
	if tab, err := Read(d, 0); err != nil || tab.Kind != None {
		t.Errorf("Read of an empty disk = %v, %v", tab, err)
	}
}

type errReader struct{}

func (errReader) ReadAt(p []byte, off int64) (int, error) { return 0, fmt.Errorf("I/O error") }

// seed is a fuzz input: the first bytes of a disk of sectors sectors
// (the rest reads as zeros).
type seed struct {
	data    []byte
	sectors uint16
}

// trim drops trailing zeros.
func trim(b []byte) []byte {
	return bytes.Clone(bytes.TrimRight(b, "\x00"))
}

// seeds are small tables made by the encoders and the first 64 KiB of
// each golden disk, without their trailing zeros.
func seeds(t testing.TB) []seed {
	var out []seed
	const n = 128
	d := make(memDisk, n*SectorSize)
	WriteGPT(d, n, guid(1), []GPTEntry{{TypeGUID: linuxGUID, First: 40, Last: 60}, {TypeGUID: linuxGUID, First: 70, Last: 69}, {TypeGUID: linuxGUID, First: 90, Last: 80}})
	out = append(out, seed{trim(d[:34*SectorSize]), n}) // without the backup
	d = make(memDisk, n*SectorSize)
	WriteDOS(d, 1, [4]MBREntry{{Type: TypeLinux, Start: 1, Sectors: 1}, {Type: TypeExtended, Start: 2, Sectors: 100}},
		[]MBREntry{{Type: TypeLinux, Start: 3, Sectors: 1}, {Type: TypeLinux, Start: 5, Sectors: 1}, {Type: TypeLinux, Start: 7, Sectors: 100}})
	out = append(out, seed{trim(d), n})
	for _, name := range goldenNames(t) {
		g := readGolden(t, name)
		out = append(out, seed{trim(g[:n*SectorSize]), uint16(g.sectors())})
	}
	return out
}

func TestWriteCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	for i, s := range seeds(t) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nuint16(%d)\n", strconv.Quote(string(s.data)), s.sectors)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzRead: reading never panics and every partition lies inside the
// disk, numbered 1..255 without repeats; the MBR and GPT header
// decoders are stable under decode→encode→decode; a GPT re-written from
// what was read reads back the same.
func FuzzRead(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.data, s.sectors)
	}
	f.Fuzz(func(t *testing.T, data []byte, claimed uint16) {
		d := memDisk(data)
		sectors := uint64(claimed)
		tab, err := Read(d, sectors)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, p := range tab.Parts {
			if p.Number < 1 || p.Number > MaxPartitions || seen[p.Number] {
				t.Fatalf("bad or repeated number in %+v", tab.Parts)
			}
			seen[p.Number] = true
			if p.Sectors == 0 || p.Start >= sectors || p.Sectors > sectors-p.Start {
				t.Fatalf("partition %+v outside a disk of %d sectors", p, sectors)
			}
		}
		again, _ := Read(d, sectors)
		if !tab.Equal(again) {
			t.Fatal("two reads differ")
		}
		if len(data) >= SectorSize {
			var m, m2 MBR
			m.UnmarshalBinary(data)
			enc, _ := m.MarshalBinary()
			if !bytes.Equal(enc, data[:SectorSize]) {
				t.Fatal("MBR re-encoding differs from the sector")
			}
			m2.UnmarshalBinary(enc)
			if m != m2 {
				t.Fatal("MBR round trip")
			}
		}
		if len(data) >= 2*SectorSize {
			var h GPTHeader
			if h.UnmarshalBinary(data[SectorSize:]) == nil {
				enc, _ := h.MarshalBinary()
				var h2 GPTHeader
				if err := h2.UnmarshalBinary(enc); err != nil || !h2.CRCValid() {
					t.Fatalf("re-encoded header: %v, CRC valid %v", err, h2.CRCValid())
				}
				enc2, _ := h2.MarshalBinary()
				if !bytes.Equal(enc, enc2) {
					t.Fatal("GPT header encoding not stable")
				}
			}
		}
		if tab.Kind == GPT && len(tab.Parts) > 0 && sectors <= 1<<14 {
			last := tab.Parts[len(tab.Parts)-1].Number
			entries := make([]GPTEntry, last)
			for _, p := range tab.Parts {
				entries[p.Number-1] = GPTEntry{TypeGUID: p.TypeGUID, UUID: p.UUID, First: p.Start, Last: p.Start + p.Sectors - 1}
			}
			fresh := make(memDisk, sectors*SectorSize)
			if WriteGPT(fresh, sectors, guid(9), entries) != nil {
				return // too small for a whole GPT of that many entries
			}
			back, err := Read(fresh, sectors)
			if err != nil || !back.Equal(tab) {
				t.Fatalf("re-written GPT reads back %+v; want %+v", back, tab)
			}
		}
	})
}

// TestProcPartitions: the layout of linux.uml's /proc/partitions
// (testdata: a disk with 20 GPT partitions, the last five on major 259).
func TestProcPartitions(t *testing.T) {
	d := readGolden(t, "gpt-holes")
	tab, err := Read(d, d.sectors())
	if err != nil {
		t.Fatal(err)
	}
	const unit = 3 // ubdd
	entries := []ProcEntry{{UbdMajor, unit * UbdMinors, d.sectors() / 2, "ubdd"}}
	ext := uint32(0)
	for _, p := range tab.Parts {
		e := ProcEntry{UbdMajor, uint32(unit*UbdMinors + p.Number), p.Sectors / 2, PartName("ubdd", p.Number)}
		if p.Number >= UbdMinors {
			e.Major, e.Minor = ExtendedMajor, ext
			ext++
		}
		entries = append(entries, e)
	}
	got := string(ProcPartitions(entries))
	// linux.uml's lines for this disk, booted as ubdd (/proc/partitions).
	want := "major minor  #blocks  name\n\n" +
		"  98       48       4096 ubdd\n" +
		"  98       49         64 ubdd1\n" +
		"  98       50         64 ubdd2\n"
	if !strings.HasPrefix(got, want) {
		t.Errorf("ProcPartitions:\n%s\nwant a start of:\n%s", got, want)
	}
	if !strings.Contains(got, "  98       63         64 ubdd15\n 259        0         64 ubdd16\n") || !strings.HasSuffix(got, " 259        4         64 ubdd20\n") {
		t.Errorf("ProcPartitions, extended minors:\n%s", got)
	}
}
