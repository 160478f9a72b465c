package e2e

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/parttable"
	"github.com/umlkit/umlkit/tests/harness"
)

// The partition attack: guest root writes crafted partition tables to a
// scratch disk, has them read (BLKRRPART), then reads and writes every
// partition that appears, to its end and beyond, and tries the block
// ioctls past a partition's end. No partition may be larger than the
// disk, no byte of the read-only victim disk (or of the host file behind
// any disk) may be read or changed through one, and the scratch disk's
// host file must not grow.

const (
	attackDiskSectors = 32768 // 16 MiB
	victimSecret      = "VICTIM-SECRET"
)

// memImage is a disk in memory for building tables.
type memImage []byte

func (m memImage) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// craftedTables are the first sectors of the scratch disk for each attack.
func craftedTables(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	// DOS: a partition far longer than the disk, one starting beyond it,
	// overlapping ones, and an extended partition whose EBR links to
	// itself (Linux makes logical partitions up to 255 of it).
	d := make(memImage, 128*512)
	m := parttable.MBR{Signature: parttable.MBRSignature}
	m.Entries = [4]parttable.MBREntry{
		{Type: parttable.TypeLinux, Start: 2048, Sectors: 0xFFFFFFFF},
		{Type: parttable.TypeLinux, Start: 0xFFFFFF00, Sectors: 100},
		{Type: parttable.TypeExtended, Start: 64, Sectors: 64},
		{Type: parttable.TypeLinux, Start: 1024, Sectors: 4096},
	}
	b, _ := m.MarshalBinary()
	copy(d, b)
	ebr := parttable.MBR{Signature: parttable.MBRSignature}
	ebr.Entries[0] = parttable.MBREntry{Type: parttable.TypeLinux, Start: 1, Sectors: 2}
	ebr.Entries[1] = parttable.MBREntry{Type: parttable.TypeExtended, Start: 0, Sectors: 64}
	b, _ = ebr.MarshalBinary()
	copy(d[64*512:], b)
	out["dos"] = d[:65*512]

	// GPT with valid CRCs: 300 entries (numbers stop at 255), an entry
	// whose first LBA is past its last, entries ending beyond the disk or
	// near 2^64, one covering the whole disk (the table included).
	linux := [16]byte{0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4}
	e := make([]parttable.GPTEntry, 300)
	e[0] = parttable.GPTEntry{TypeGUID: linux, First: 2048, Last: 4095}
	e[1] = parttable.GPTEntry{TypeGUID: linux, First: 30000, Last: 100}
	e[2] = parttable.GPTEntry{TypeGUID: linux, First: 100, Last: ^uint64(0)}
	e[3] = parttable.GPTEntry{TypeGUID: linux, First: ^uint64(0) - 255, Last: ^uint64(0)}
	e[4] = parttable.GPTEntry{TypeGUID: linux, First: 0, Last: attackDiskSectors - 1}
	e[299] = parttable.GPTEntry{TypeGUID: linux, First: 5000, Last: 6000}
	full := make(memImage, attackDiskSectors*512)
	if err := parttable.WriteGPT(full, attackDiskSectors, [16]byte{7}, e); err != nil {
		t.Fatal(err)
	}
	out["gpt"] = bytes.Clone(full[:(2+75)*512]) // no backup: the primary is used anyway

	// A GPT header claiming 2^32-1 entries (a 512 GiB array), with a
	// correct header CRC; and one whose header CRC is wrong.
	huge := bytes.Clone(out["gpt"][:2*512])
	binary.LittleEndian.PutUint32(huge[512+80:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(huge[512+16:], 0)
	binary.LittleEndian.PutUint32(huge[512+16:], crc32.ChecksumIEEE(huge[512:512+92]))
	out["gpthuge"] = huge
	bad := bytes.Clone(out["gpt"])
	bad[512+16] ^= 0xFF
	out["gptcrc"] = bad
	return out
}

// partitionAttack is the guest's script (root, with users u1 and u2 of
// diskProbeFiles): ubdb is the scratch disk, ubdc the read-only victim.
const partitionAttack = `attack() {
	dd if=/t/$1.bin of=/dev/ubdb conv=notrunc 2>/dev/null
	blockdev --rereadpt /dev/ubdb; echo "RRPART-$1 $?"
	n=0
	for p in /dev/ubdb[0-9]*; do
		[ -e $p ] || continue
		n=$((n+1))
		# linux.uml (quick=1) looks at a few: it takes a second per call
		[ -n "$quick" ] && case $p in */ubdb[1-6]|*/ubdb255) ;; *) continue;; esac
		s=$(blockdev --getsize64 $p)
		[ "$s" -le 16777216 ] || echo "BIGPART-$1 $p $s"
		case $p in */ubdb[1-6]|*/ubdb255) ;; *) continue;; esac # the rest are copies of 5
		dd if=/dev/zero of=$p bs=512 seek=$((s/512-1)) count=2 conv=notrunc 2>/dev/null
		dd if=$p bs=64k 2>/dev/null | grep -q ` + victimSecret + ` && echo "LEAK-$1 $p"
		dd if=$p bs=512 skip=$((s/512)) count=1 2>/dev/null | grep -q . && echo "READ-BEYOND-$1 $p"
	done
	echo "PARTS-$1 $n"
}
attack dos
blkdiscard -o 0 -l 16777216 /dev/ubdb1 2>/dev/null && echo DISCARD-BEYOND-ALLOWED || echo DISCARD-BEYOND-REFUSED
exec 3</dev/ubdb5
blockdev --rereadpt /dev/ubdb 2>/dev/null && echo RRPART-OPEN-ALLOWED || echo RRPART-OPEN-BUSY
exec 3<&-
attack gpt
attack gpthuge
attack gptcrc
attack gpt
echo x > /tmp/plain
blockdev --getsize64 /tmp/plain 2>&1 | grep -q 'Inappropriate ioctl' && echo FOREIGN-FD-ENOTTY
su u1 -c 'blockdev --getsize64 /dev/ubdb1' 2>&1 | grep -q 'Permission denied' && echo U1-OPEN-REFUSED
su u2 -c 'blockdev --getsize64 /dev/ubdb1' >/dev/null 2>&1 && echo U2-GETSIZE-ALLOWED
su u2 -c 'blockdev --rereadpt /dev/ubdb' 2>&1 | grep -q 'Permission denied' && echo U2-RRPART-REFUSED
su u2 -c 'blockdev --flushbufs /dev/ubdb' 2>&1 | grep -q 'Permission denied' && echo U2-FLSBUF-REFUSED
dd if=/dev/zero of=/dev/ubdc bs=512 count=1 conv=notrunc 2>/dev/null && echo VICTIM-WRITTEN || echo VICTIM-WRITE-REFUSED
blkdiscard /dev/ubdc 2>/dev/null && echo VICTIM-DISCARDED || echo VICTIM-DISCARD-REFUSED
dd if=/dev/zero of=/dev/ubdb bs=64k count=2 conv=notrunc 2>/dev/null
blockdev --rereadpt /dev/ubdb; ls /dev/ubdb[0-9]* 2>/dev/null | grep -q . && echo STALE-NODES || echo NODES-GONE
echo ATTACK-DONE
`

// attackResults are the markers the attack must print (ours).
var attackResults = []string{"RRPART-dos 0", "PARTS-dos 254", "DISCARD-BEYOND-REFUSED", "RRPART-OPEN-BUSY",
	"RRPART-gpt 0", "PARTS-gpt 3", "RRPART-gpthuge 0", "PARTS-gpthuge 0", "RRPART-gptcrc 0", "PARTS-gptcrc 0",
	"FOREIGN-FD-ENOTTY", "U1-OPEN-REFUSED", "U2-GETSIZE-ALLOWED", "U2-RRPART-REFUSED", "U2-FLSBUF-REFUSED",
	"VICTIM-WRITE-REFUSED", "VICTIM-DISCARD-REFUSED", "NODES-GONE", "ATTACK-DONE"}

func attackFiles(t *testing.T) map[string]string {
	files := map[string]string{}
	for k, v := range diskProbeFiles {
		files[k] = v
	}
	for name, b := range craftedTables(t) {
		files["t/"+name+".bin"] = string(b)
	}
	return files
}

// attackDisks makes the scratch disk (zeros) and the victim (the secret
// over and over) in dir.
func attackDisks(t *testing.T, dir string) (scratch, victim string) {
	t.Helper()
	scratch, victim = filepath.Join(dir, "scratch.img"), filepath.Join(dir, "victim.img")
	if err := os.WriteFile(scratch, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(scratch, attackDiskSectors*512); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, bytes.Repeat([]byte(victimSecret+"\n"), (4<<20)/len(victimSecret+"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return scratch, victim
}

// TestIntegrationIsolationPartitions runs the partition attack on ours,
// as root and as the test user, and logs what linux.uml answers.
func TestIntegrationIsolationPartitions(t *testing.T) {
	forBoth(t, func(t *testing.T, r *mountRun) {
		scratch, victim := attackDisks(t, r.dir)
		r.chown(scratch)
		r.chown(victim)
		before := diskProbeHash(t, victim)
		img := harness.BusyboxImage(t, r.dir, harness.Image{Init: partitionAttack + "poweroff -f\n", Files: attackFiles(t), SizeMB: 32})
		r.chown(img)
		g := r.start(harness.Bin(t, "linux"), "ubd0="+img, "ubd1="+scratch, "ubd2r="+victim, "init=/init",
			"uml_dir="+filepath.Join(r.dir, "uml"))
		if _, err := g.Wait(2 * bootTimeout); err != nil {
			t.Fatalf("%v\n%s", err, g.Output())
		}
		out := g.Output()
		t.Logf("ours:\n%s", attackLines(out))
		for _, m := range attackResults {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + `\r?$`).MatchString(out) {
				t.Errorf("the attack did not print %q", m)
			}
		}
		for _, bad := range []string{"BIGPART-", "LEAK-", "READ-BEYOND-", "VICTIM-WRITTEN", "VICTIM-DISCARDED", "DISCARD-BEYOND-ALLOWED", "RRPART-OPEN-ALLOWED", "STALE-NODES"} {
			if strings.Contains(out, bad) {
				t.Errorf("the attack printed %q", bad)
			}
		}
		if st, err := os.Stat(scratch); err != nil || st.Size() != attackDiskSectors*512 {
			t.Errorf("the scratch disk's host file is %v bytes (%v); want %d: written beyond the disk", st.Size(), err, attackDiskSectors*512)
		}
		if diskProbeHash(t, victim) != before {
			t.Error("the read-only victim disk's host file changed")
		}
		ents, _ := os.ReadDir(r.dir)
		for _, e := range ents {
			switch e.Name() {
			case "scratch.img", "victim.img", "root.img", "uml":
			default:
				t.Errorf("a file %s appeared beside the disks", e.Name())
			}
		}
	})
	t.Run("uml", func(t *testing.T) {
		harness.RealUML(t)
		dir := t.TempDir()
		scratch, victim := attackDisks(t, dir)
		before := diskProbeHash(t, victim)
		img := harness.BusyboxImage(t, dir, harness.Image{Init: partitionAttack + "poweroff -f\n", Files: attackFiles(t), SizeMB: 32})
		g := harness.BootRealUML(t, img, "ubd1="+scratch, "ubd2r="+victim, "quick=1")
		if _, err := g.Wait(3 * bootTimeout); err != nil {
			t.Fatalf("%v\n%s", err, g.Output())
		}
		t.Logf("linux.uml:\n%s", attackLines(g.Output()))
		st, _ := os.Stat(scratch)
		t.Logf("linux.uml: victim unchanged: %v, scratch size %d", diskProbeHash(t, victim) == before, st.Size())
	})
}

// attackLines are the attack's result lines in out.
func attackLines(out string) string {
	var b strings.Builder
	re := regexp.MustCompile(`^(RRPART|PARTS|BIGPART|LEAK|READ-BEYOND|DISCARD|FOREIGN|U1|U2|VICTIM|NODES|STALE|ATTACK)`)
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if re.MatchString(l) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
