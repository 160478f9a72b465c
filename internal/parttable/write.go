package parttable

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// GPTEntries is the size of the entry array WriteGPT writes (at least; more
// when an entry's index needs it), as sfdisk and parted make it.
const GPTEntries = 128

// WriteGPT writes a GPT for a disk of sectors sectors through w: the
// protective MBR, the primary header at LBA 1 with its entry array at LBA
// 2, and the backup array and header at the end. entries[i] becomes
// partition i+1 (unused entries are zero); first and last usable LBAs
// leave room for both arrays.
func WriteGPT(w io.WriterAt, sectors uint64, diskGUID [16]byte, entries []GPTEntry) error {
	n := max(len(entries), GPTEntries)
	arraySectors := uint64(n*GPTEntrySize+SectorSize-1) / SectorSize
	if sectors < 3+2*arraySectors {
		return fmt.Errorf("disk of %d sectors too small for a GPT of %d entries", sectors, n)
	}
	array := make([]byte, arraySectors*SectorSize)
	for i := range entries {
		b, err := entries[i].MarshalBinary()
		if err != nil {
			return err
		}
		copy(array[i*GPTEntrySize:], b)
	}
	crc := crc32.ChecksumIEEE(array[:n*GPTEntrySize])
	last := sectors - 1
	pm := MBR{Signature: MBRSignature}
	pm.Entries[0] = MBREntry{Type: TypeGPT, Start: 1, Sectors: uint32(min(last, 0xFFFFFFFF))}
	h := GPTHeader{
		Revision: GPTRevision, HeaderSize: GPTHeaderSize, MyLBA: 1, AltLBA: last,
		FirstUsable: 2 + arraySectors, LastUsable: last - 1 - arraySectors,
		DiskGUID: diskGUID, EntryLBA: 2, NumEntries: uint32(n), EntrySize: GPTEntrySize, EntryArrayCRC: crc,
	}
	backup := h
	backup.MyLBA, backup.AltLBA, backup.EntryLBA = last, 1, last-arraySectors
	for _, x := range []struct {
		lba uint64
		enc interface{ MarshalBinary() ([]byte, error) }
	}{{0, &pm}, {1, &h}, {last, &backup}} {
		b, _ := x.enc.MarshalBinary()
		if _, err := w.WriteAt(b, int64(x.lba*SectorSize)); err != nil {
			return err
		}
	}
	for _, lba := range []uint64{2, backup.EntryLBA} {
		if _, err := w.WriteAt(array, int64(lba*SectorSize)); err != nil {
			return err
		}
	}
	return nil
}

// ErrLayout is returned by WriteDOS for logical partitions it cannot chain.
var ErrLayout = errors.New("partition table: logical partitions must lie in order inside the extended one, each after a free sector for its EBR")

// WriteDOS writes a DOS table through w: the MBR with the four primary
// slots and disk identifier, and, when one slot is extended and logical
// is not empty, a chain of EBRs, one in the sector before each logical
// partition (whose Start is absolute here), as fdisk lays them out.
func WriteDOS(w io.WriterAt, diskID uint32, primary [4]MBREntry, logical []MBREntry) error {
	m := MBR{Entries: primary, Signature: MBRSignature}
	m.SetDiskID(diskID)
	b, _ := m.MarshalBinary()
	if _, err := w.WriteAt(b, 0); err != nil {
		return err
	}
	if len(logical) == 0 {
		return nil
	}
	ext := -1
	for i, e := range primary {
		if IsExtended(e.Type) && e.Sectors != 0 {
			ext = i
			break
		}
	}
	if ext < 0 {
		return ErrLayout
	}
	extStart, extEnd := uint64(primary[ext].Start), uint64(primary[ext].Start)+uint64(primary[ext].Sectors)
	prev := extStart
	for i, l := range logical {
		ebr := uint64(l.Start) - 1
		if uint64(l.Start) == 0 || ebr < prev || uint64(l.Start)+uint64(l.Sectors) > extEnd {
			return ErrLayout
		}
		if i == 0 && ebr != extStart {
			return ErrLayout // the first EBR is the extended partition's first sector
		}
		e := MBR{Signature: MBRSignature}
		e.Entries[0] = MBREntry{Boot: l.Boot, Type: l.Type, Start: 1, Sectors: l.Sectors}
		if i+1 < len(logical) {
			next := uint64(logical[i+1].Start) - 1
			e.Entries[1] = MBREntry{Type: TypeExtended, Start: uint32(next - extStart), Sectors: uint32(uint64(logical[i+1].Start) + uint64(logical[i+1].Sectors) - next)}
		}
		b, _ := e.MarshalBinary()
		if _, err := w.WriteAt(b, int64(ebr*SectorSize)); err != nil {
			return err
		}
		prev = uint64(l.Start) + uint64(l.Sectors)
	}
	return nil
}
