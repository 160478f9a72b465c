package parttable

import (
	"encoding/binary"
	"errors"
)

// MBR layout (one sector).
const (
	offDiskID    = 440 // 32-bit disk identifier ("label-id")
	offEntries   = 446
	entrySize    = 16
	offSignature = 510

	offEntryBoot    = 0
	offEntryCHS1    = 1
	offEntryType    = 4
	offEntryCHS2    = 5
	offEntryStart   = 8
	offEntrySectors = 12
)

// DOS system ids with a meaning here.
const (
	TypeEmpty       = 0x00
	TypeExtended    = 0x05 // CHS-addressed extended partition
	TypeExtendedLBA = 0x0F // LBA-addressed extended partition
	TypeLinuxExt    = 0x85 // Linux's extended partition
	TypeGPT         = 0xEE // GPT protective
	TypeLinux       = 0x83
	TypeLinuxSwap   = 0x82
	TypeFAT32LBA    = 0x0C
	typeDM6         = 0x54 // OnTrack Disk Manager 6: "[DM]" in Linux's listing
	typeEZD         = 0x55 // EZ-Drive: "[EZD]"
)

// Sentinel errors of the sector decoders.
var (
	// ErrShortSector: fewer bytes than one sector.
	ErrShortSector = errors.New("partition table: short sector")
	// ErrNoSignature: an MBR or EBR sector without the 0x55AA signature.
	ErrNoSignature = errors.New("partition table: no 0x55AA signature")
)

// IsExtended reports whether a DOS system id is an extended partition's.
func IsExtended(typ byte) bool {
	return typ == TypeExtended || typ == TypeExtendedLBA || typ == TypeLinuxExt
}

// MBREntry is one slot of an MBR or EBR.
type MBREntry struct {
	Boot           byte // 0x80 active, 0x00 not
	Type           byte
	Start, Sectors uint32 // LBA (relative, in an EBR) and length
	// CHS are the two 3-byte cylinder/head/sector addresses, kept as
	// they are (Linux ignores them).
	FirstCHS, LastCHS [3]byte
}

// MBR is a master (or extended) boot record sector.
type MBR struct {
	// Code is everything before the slots: boot code, the disk
	// identifier at 440 and two bytes at 444.
	Code    [offEntries]byte
	Entries [4]MBREntry
	// Signature is the last two bytes, little-endian: MBRSignature in a
	// table.
	Signature uint16
}

// MBRSignature is the signature of an MBR or EBR (bytes 0x55 0xAA).
const MBRSignature = 0xAA55

// Signed reports whether the sector carries the signature.
func (m *MBR) Signed() bool { return m.Signature == MBRSignature }

// DiskID is the 32-bit disk identifier (sfdisk's label-id).
func (m *MBR) DiskID() uint32 { return binary.LittleEndian.Uint32(m.Code[offDiskID:]) }

// SetDiskID sets the disk identifier.
func (m *MBR) SetDiskID(id uint32) { binary.LittleEndian.PutUint32(m.Code[offDiskID:], id) }

// UnmarshalBinary decodes a sector (the first SectorSize bytes of b). A
// sector without the signature decodes too (Signed reports it).
func (m *MBR) UnmarshalBinary(b []byte) error {
	if len(b) < SectorSize {
		return ErrShortSector
	}
	copy(m.Code[:], b[:offEntries])
	for i := range m.Entries {
		e := b[offEntries+i*entrySize:]
		m.Entries[i] = MBREntry{
			Boot:    e[offEntryBoot],
			Type:    e[offEntryType],
			Start:   binary.LittleEndian.Uint32(e[offEntryStart:]),
			Sectors: binary.LittleEndian.Uint32(e[offEntrySectors:]),
		}
		copy(m.Entries[i].FirstCHS[:], e[offEntryCHS1:])
		copy(m.Entries[i].LastCHS[:], e[offEntryCHS2:])
	}
	m.Signature = binary.LittleEndian.Uint16(b[offSignature:])
	return nil
}

// MarshalBinary encodes the sector (SectorSize bytes).
func (m *MBR) MarshalBinary() ([]byte, error) {
	b := make([]byte, SectorSize)
	copy(b, m.Code[:])
	for i, x := range m.Entries {
		e := b[offEntries+i*entrySize:]
		e[offEntryBoot] = x.Boot
		copy(e[offEntryCHS1:], x.FirstCHS[:])
		e[offEntryType] = x.Type
		copy(e[offEntryCHS2:], x.LastCHS[:])
		binary.LittleEndian.PutUint32(e[offEntryStart:], x.Start)
		binary.LittleEndian.PutUint32(e[offEntrySectors:], x.Sectors)
	}
	binary.LittleEndian.PutUint16(b[offSignature:], m.Signature)
	return b, nil
}

// maxIdleEBRs is how many EBRs in a row without a data partition the chain
// walk follows before it gives up (Linux's bound on a looping chain).
const maxIdleEBRs = 100

// readDOS reads a DOS table into t and raw; ok reports that one was
// recognised (possibly without partitions).
func (d *disk) readDOS(t *Table, raw *[]Partition) (ok bool, err error) {
	b, on, err := d.readSectors(0, 1)
	if err != nil || !on {
		return false, err
	}
	var m MBR
	m.UnmarshalBinary(b)
	if !m.Signed() {
		return false, nil
	}
	// A boot sector of a file system (FAT) also ends in 0x55AA; a table
	// has only 0x00 or 0x80 as boot flags. A FAT boot sector that fails
	// the test in the first slot counts as a table without partitions.
	for i, e := range m.Entries {
		if e.Boot != 0 && e.Boot != 0x80 {
			if i == 0 && fatBootSector(b) {
				t.Kind = DOS
				return true, nil
			}
			return false, nil
		}
	}
	// A protective or hybrid MBR whose GPT was not valid: no partitions.
	for _, e := range m.Entries {
		if e.Type == TypeGPT {
			return false, nil
		}
	}
	t.Kind = DOS
	next := 5
	for slot, e := range m.Entries {
		n := slot + 1
		if e.Sectors == 0 {
			continue
		}
		start, size := uint64(e.Start), uint64(e.Sectors)
		if IsExtended(e.Type) {
			*raw = append(*raw, Partition{Number: n, Start: start, Sectors: min(size, 2), Extended: true, Type: e.Type})
			t.listing = append(t.listing, n, listOpen)
			if err := d.readLogical(t, raw, start, size, &next); err != nil {
				return false, err
			}
			t.listing = append(t.listing, listClose)
			continue
		}
		*raw = append(*raw, Partition{Number: n, Start: start, Sectors: size, Type: e.Type})
		t.listing = append(t.listing, n)
		switch e.Type {
		case typeDM6:
			t.tag(n, "[DM]")
		case typeEZD:
			t.tag(n, "[EZD]")
		}
	}
	return true, nil
}

// FAT boot sector fields (BIOS parameter block).
const (
	offFATReserved = 14 // reserved sectors, 16 bits
	offFATCount    = 16 // number of FATs
	offFATMedia    = 21 // media descriptor
)

// fatBootSector reports whether b looks like a FAT boot sector: reserved
// sectors and FATs not zero, and a valid media descriptor (0xF0, 0xF8-0xFF).
func fatBootSector(b []byte) bool {
	media := b[offFATMedia]
	return binary.LittleEndian.Uint16(b[offFATReserved:]) != 0 && b[offFATCount] != 0 && (media == 0xF0 || media >= 0xF8)
}

func (t *Table) tag(n int, s string) {
	if t.tags == nil {
		t.tags = map[int]string{}
	}
	t.tags[n] = s
}

// readLogical walks the EBR chain of the extended partition at extStart
// (extSize sectors). In each EBR the data partitions start relative to
// that EBR; the link to the next EBR (its first extended slot) is relative
// to the extended partition. Slots 3 and 4 of an EBR hold garbage on some
// disks and count only when they lie inside both the current link's
// region and the extended partition. Numbers continue from *next.
func (d *disk) readLogical(t *Table, raw *[]Partition, extStart, extSize uint64, next *int) error {
	ebr, span := extStart, extSize // the current EBR and the size of its link
	idle := 0
	for {
		idle++
		if idle > maxIdleEBRs || *next > MaxPartitions {
			return nil
		}
		b, on, err := d.readSectors(ebr, 1)
		if err != nil {
			return err
		}
		if !on {
			t.beyond = true
			return nil
		}
		var m MBR
		m.UnmarshalBinary(b)
		if !m.Signed() {
			return nil
		}
		for i, e := range m.Entries {
			if e.Sectors == 0 || IsExtended(e.Type) {
				continue
			}
			rel, size := uint64(e.Start), uint64(e.Sectors)
			start := ebr + rel
			if i >= 2 && (rel+size > span || start < extStart || start+size > extStart+extSize) {
				continue
			}
			*raw = append(*raw, Partition{Number: *next, Start: start, Sectors: size, Type: e.Type})
			t.listing = append(t.listing, *next)
			idle = 0
			if *next++; *next > MaxPartitions {
				return nil
			}
		}
		link := -1
		for i, e := range m.Entries {
			if e.Sectors != 0 && IsExtended(e.Type) {
				link = i
				break
			}
		}
		if link < 0 {
			return nil
		}
		ebr, span = extStart+uint64(m.Entries[link].Start), uint64(m.Entries[link].Sectors)
	}
}
