// Package parttable finds the partitions Linux finds on a disk, numbered as
// Linux numbers them (/dev/ubdb1, ...): a DOS partition table (MBR: four
// primary slots 1-4; extended partitions with their chain of extended boot
// records, whose logical partitions are numbered from 5) and a GUID
// partition table (GPT: entry i is partition i+1).
//
// Read follows the rules a Linux 6.1 kernel (Debian's linux.uml) applies,
// observed on crafted disks (testdata/README) and described by the UEFI
// specification (GPT, 2.10 §5.3) and the MBR/EBR conventions:
//
//   - GPT is tried first and needs a protective MBR (a slot of type 0xEE
//     starting at LBA 1; other slots may be in use: "hybrid"). The primary
//     header at LBA 1 must be valid (signature, header size 92..512, header
//     CRC, its own LBA, usable range within the disk, 128-byte entries, an
//     entry array of at most 4 MiB that lies on the disk, entry CRC); its
//     backup is only compared (warnings), never used instead. An entry is a
//     partition when its type GUID is not zero and its first and last LBA
//     lie on the disk; numbers stop at 255.
//   - A DOS table needs the 0x55AA signature and boot flags 0x00 or 0x80
//     in all four slots, and no slot of type 0xEE. An extended slot (types
//     0x05, 0x0F, 0x85) is listed with a size of two sectors, so no file
//     system fits on it; its logical partitions are found by walking the
//     EBR chain (at most 100 EBRs in a row without a data partition, at
//     most up to partition 255).
//   - Partitions of size zero are dropped, partitions starting beyond the
//     end of the disk are dropped and those extending beyond it are cut
//     at the end, each with Linux's message.
//
// Not recognised (Linux has them): BSD, Solaris, UnixWare and Minix
// sub-partitions inside a DOS slot, and the Acorn, AIX, Amiga, Atari, LDM,
// Mac, OSF, SGI, Sun, SYSV68, Ultrix and Karma formats.
//
// Whatever the table says, every Partition that Read returns lies inside
// the disk: Start < sectors and Start+Sectors <= sectors. A GPT entry whose
// first LBA is beyond its last (Linux 6.1 wraps the size around, keeping a
// partition of about 2^64 sectors) ends at the end of the disk here.
//
// The package is pure: it reads through an io.ReaderAt and does no other
// I/O. Encoders for the on-disk structures (MBR, GPT header and entries)
// make test disks and fuzz seeds.
package parttable

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// SectorSize is the logical sector size of the disks read (ubd's).
const SectorSize = 512

// MaxPartitions is the highest partition number Linux gives a ubd disk
// (256 minors, the first for the whole disk).
const MaxPartitions = 255

// Kind is the kind of partition table found.
type Kind string

// Kinds of tables (the names sfdisk and blkid's PTTYPE use).
const (
	None Kind = ""
	DOS  Kind = "dos"
	GPT  Kind = "gpt"
)

// Partition is one partition in sectors of SectorSize.
type Partition struct {
	Number  int
	Start   uint64 // first sector on the disk
	Sectors uint64 // length (an extended DOS partition: 2, or 1 if it is that small)
	// Extended marks a DOS extended partition (the container of the
	// logical ones).
	Extended bool
	// Type is the DOS system id (0 for GPT).
	Type byte
	// TypeGUID and UUID are the GPT partition type and unique GUIDs
	// (mixed-endian, as stored).
	TypeGUID, UUID [16]byte
}

// Table is what Read found.
type Table struct {
	Kind  Kind
	Parts []Partition // by Number, after the end-of-disk rules
	// listing is the parser's listing: partition numbers, and -1 / -2
	// for the " <" and " >" around an extended partition's logical ones.
	listing []int
	// tags are DOS markers printed after a partition's name ("[DM]").
	tags map[int]string
	// warnings are GPT messages printed while parsing (before the
	// listing); eod are the end-of-disk messages (after it).
	warnings []string
	eod      []eodNote
	// beyond: the EBR chain pointed beyond the end of the disk.
	beyond bool
}

type eodNote struct {
	number  int
	value   uint64
	started bool // "start ... is beyond EOD" rather than "size ... extends"
}

const (
	listOpen  = -1
	listClose = -2
)

// ErrTooLarge is returned for a disk of more sectors than an int64 offset
// can address.
var ErrTooLarge = errors.New("partition table: disk too large")

// Read finds the partition table of a disk of sectors sectors read
// through r, and its partitions. Only an I/O error of r (not a read
// beyond the disk, which Read never does) is returned as an error; a
// table that is damaged or absent gives Kind None and no partitions.
func Read(r io.ReaderAt, sectors uint64) (*Table, error) {
	if sectors > (1<<63-1)/SectorSize {
		return nil, ErrTooLarge
	}
	d := &disk{r: r, sectors: sectors}
	t := &Table{}
	var raw []Partition
	ok, err := d.readGPT(t, &raw)
	if err != nil {
		return nil, err
	}
	if !ok {
		t.warnings = nil
		if ok, err = d.readDOS(t, &raw); err != nil {
			return nil, err
		}
	}
	if !ok {
		return &Table{}, nil
	}
	t.Parts = clip(t, raw, sectors)
	return t, nil
}

// clip applies Linux's rules for adding the parser's partitions to a disk
// of sectors sectors: size 0 is skipped, a start beyond the end drops the
// partition, a size beyond the end is cut.
func clip(t *Table, raw []Partition, sectors uint64) []Partition {
	sort.SliceStable(raw, func(i, j int) bool { return raw[i].Number < raw[j].Number })
	var out []Partition
	for _, p := range raw {
		if p.Sectors == 0 {
			continue
		}
		if p.Start >= sectors {
			t.eod = append(t.eod, eodNote{p.Number, p.Start, true})
			continue
		}
		if p.Sectors > sectors-p.Start {
			t.eod = append(t.eod, eodNote{p.Number, p.Sectors, false})
			p.Sectors = sectors - p.Start
		}
		out = append(out, p)
	}
	return out
}

// Listing is the line Linux prints when it has read the table, e.g.
// " ubdb: ubdb1 ubdb2 < ubdb5 ubdb6 >" for the disk name "ubdb", or "" when
// no table was found.
func (t *Table) Listing(name string) string {
	if t.Kind == None {
		return ""
	}
	var b strings.Builder
	b.WriteString(" " + name + ":")
	for _, n := range t.listing {
		switch n {
		case listOpen:
			b.WriteString(" <")
		case listClose:
			b.WriteString(" >")
		default:
			fmt.Fprintf(&b, " %s", PartName(name, n))
			b.WriteString(t.tags[n])
		}
	}
	return b.String()
}

// LogLines are the lines Linux prints for the table of disk name, in its
// order: GPT warnings, the listing, then the end-of-disk notes.
func (t *Table) LogLines(name string) []string {
	if t.Kind == None {
		return nil
	}
	out := append([]string(nil), t.warnings...)
	out = append(out, t.Listing(name))
	if t.beyond {
		out = append(out, name+": partition table partially beyond EOD, truncated")
	}
	for _, e := range t.eod {
		if e.started {
			out = append(out, fmt.Sprintf("%s: p%d start %d is beyond EOD, truncated", name, e.number, e.value))
		} else {
			out = append(out, fmt.Sprintf("%s: p%d size %d extends beyond EOD, truncated", name, e.number, e.value))
		}
	}
	return out
}

// PartName is the name of partition n of disk name: the number appended,
// after a "p" when the name ends in a digit (as Linux names them).
func PartName(name string, n int) string {
	if name != "" && name[len(name)-1] >= '0' && name[len(name)-1] <= '9' {
		return fmt.Sprintf("%sp%d", name, n)
	}
	return fmt.Sprintf("%s%d", name, n)
}

// Equal reports whether two tables give the same partitions (numbers,
// places and sizes).
func (t *Table) Equal(u *Table) bool {
	if t.Kind != u.Kind || len(t.Parts) != len(u.Parts) {
		return false
	}
	for i := range t.Parts {
		a, b := t.Parts[i], u.Parts[i]
		if a.Number != b.Number || a.Start != b.Start || a.Sectors != b.Sectors {
			return false
		}
	}
	return true
}

// disk reads sectors.
type disk struct {
	r       io.ReaderAt
	sectors uint64
}

// readSectors reads n sectors from lba; ok is false when they are not all
// on the disk.
func (d *disk) readSectors(lba, n uint64) (b []byte, ok bool, err error) {
	if n == 0 {
		return nil, true, nil
	}
	if lba >= d.sectors || n > d.sectors-lba {
		return nil, false, nil
	}
	b = make([]byte, n*SectorSize)
	got, err := d.r.ReadAt(b, int64(lba*SectorSize))
	if err != nil && err != io.EOF {
		return nil, false, fmt.Errorf("read sector %d: %w", lba+uint64(got)/SectorSize, err)
	}
	// A reader shorter than the disk it was given for: zeros beyond its
	// end, as in a sparse image file.
	clear(b[got:])
	return b, true, nil
}

// Block device numbers of ubd disks in /proc/partitions: major 98 with 16
// minors per disk (the disk and partitions 1-15); partitions from 16 on get
// a minor of the extended major 259, the lowest free one when they appear.
const (
	UbdMajor      = 98
	UbdMinors     = 16
	ExtendedMajor = 259
)

// ProcEntry is one line of /proc/partitions.
type ProcEntry struct {
	Major, Minor uint32
	Blocks       uint64 // KiB
	Name         string
}

// ProcPartitions renders /proc/partitions as Linux prints it.
func ProcPartitions(entries []ProcEntry) []byte {
	b := []byte("major minor  #blocks  name\n\n")
	for _, e := range entries {
		b = fmt.Appendf(b, "%4d  %7d %10d %s\n", e.Major, e.Minor, e.Blocks, e.Name)
	}
	return b
}
