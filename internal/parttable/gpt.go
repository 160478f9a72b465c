package parttable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf16"
)

// GPT header layout (UEFI 2.10 §5.3.2), little-endian.
const (
	gptSignature      = "EFI PART"
	GPTHeaderSize     = 92 // the header's defined size
	GPTEntrySize      = 128
	GPTRevision       = 0x00010000
	offGPTSignature   = 0
	offGPTRevision    = 8
	offGPTHeaderSize  = 12
	offGPTHeaderCRC   = 16
	offGPTMyLBA       = 24
	offGPTAltLBA      = 32
	offGPTFirstUsable = 40
	offGPTLastUsable  = 48
	offGPTDiskGUID    = 56
	offGPTEntryLBA    = 72
	offGPTNumEntries  = 80
	offGPTEntrySize   = 84
	offGPTEntryCRC    = 88

	offEntryTypeGUID = 0
	offEntryUUID     = 16
	offEntryFirst    = 32
	offEntryLast     = 40
	offEntryAttrs    = 48
	offEntryName     = 56
	entryNameUnits   = 36 // UTF-16 code units

	// maxEntryArray is the largest entry array Linux reads (its
	// KMALLOC_MAX_SIZE on x86: 4 MiB); a larger one makes the header
	// invalid.
	maxEntryArray = 4 << 20
)

// ErrNotGPT is returned by GPTHeader.UnmarshalBinary for a sector without
// the GPT signature.
var ErrNotGPT = errors.New("partition table: no GPT signature")

// GPTHeader is a GPT header (primary or backup).
type GPTHeader struct {
	Revision      uint32
	HeaderSize    uint32
	HeaderCRC     uint32 // as stored
	MyLBA, AltLBA uint64
	FirstUsable   uint64
	LastUsable    uint64
	DiskGUID      [16]byte
	EntryLBA      uint64
	NumEntries    uint32
	EntrySize     uint32
	EntryArrayCRC uint32
	crcOK         bool // the CRC matched at decoding
	headerSizeOK  bool // HeaderSize is within 92..512
}

// UnmarshalBinary decodes a header sector (SectorSize bytes).
func (h *GPTHeader) UnmarshalBinary(b []byte) error {
	if len(b) < SectorSize {
		return ErrShortSector
	}
	if string(b[offGPTSignature:offGPTSignature+8]) != gptSignature {
		return ErrNotGPT
	}
	le := binary.LittleEndian
	*h = GPTHeader{
		Revision:      le.Uint32(b[offGPTRevision:]),
		HeaderSize:    le.Uint32(b[offGPTHeaderSize:]),
		HeaderCRC:     le.Uint32(b[offGPTHeaderCRC:]),
		MyLBA:         le.Uint64(b[offGPTMyLBA:]),
		AltLBA:        le.Uint64(b[offGPTAltLBA:]),
		FirstUsable:   le.Uint64(b[offGPTFirstUsable:]),
		LastUsable:    le.Uint64(b[offGPTLastUsable:]),
		EntryLBA:      le.Uint64(b[offGPTEntryLBA:]),
		NumEntries:    le.Uint32(b[offGPTNumEntries:]),
		EntrySize:     le.Uint32(b[offGPTEntrySize:]),
		EntryArrayCRC: le.Uint32(b[offGPTEntryCRC:]),
	}
	copy(h.DiskGUID[:], b[offGPTDiskGUID:])
	if h.HeaderSize >= GPTHeaderSize && h.HeaderSize <= SectorSize {
		h.headerSizeOK = true
		c := append([]byte(nil), b[:h.HeaderSize]...)
		clear(c[offGPTHeaderCRC : offGPTHeaderCRC+4])
		h.crcOK = crc32.ChecksumIEEE(c) == h.HeaderCRC
	}
	return nil
}

// MarshalBinary encodes the header into a sector with the header CRC
// computed (HeaderCRC is ignored). A HeaderSize outside 92..512 is
// written as 92; the bytes after the 92 defined ones are zero.
func (h *GPTHeader) MarshalBinary() ([]byte, error) {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	hs := h.HeaderSize
	if hs < GPTHeaderSize || hs > SectorSize {
		hs = GPTHeaderSize
	}
	copy(b, gptSignature)
	le.PutUint32(b[offGPTRevision:], h.Revision)
	le.PutUint32(b[offGPTHeaderSize:], hs)
	le.PutUint64(b[offGPTMyLBA:], h.MyLBA)
	le.PutUint64(b[offGPTAltLBA:], h.AltLBA)
	le.PutUint64(b[offGPTFirstUsable:], h.FirstUsable)
	le.PutUint64(b[offGPTLastUsable:], h.LastUsable)
	copy(b[offGPTDiskGUID:], h.DiskGUID[:])
	le.PutUint64(b[offGPTEntryLBA:], h.EntryLBA)
	le.PutUint32(b[offGPTNumEntries:], h.NumEntries)
	le.PutUint32(b[offGPTEntrySize:], h.EntrySize)
	le.PutUint32(b[offGPTEntryCRC:], h.EntryArrayCRC)
	le.PutUint32(b[offGPTHeaderCRC:], crc32.ChecksumIEEE(b[:hs]))
	return b, nil
}

// CRCValid reports whether the header's CRC matched when it was decoded
// (false for a header size outside 92..512).
func (h *GPTHeader) CRCValid() bool { return h.crcOK }

// GPTEntry is one entry of the partition entry array.
type GPTEntry struct {
	TypeGUID, UUID [16]byte
	First, Last    uint64 // LBAs, inclusive
	Attributes     uint64
	Name           string
}

// Used reports whether the entry describes a partition (a type GUID that
// is not zero).
func (e *GPTEntry) Used() bool { return e.TypeGUID != [16]byte{} }

// UnmarshalBinary decodes an entry (GPTEntrySize bytes). The name ends at
// its first NUL.
func (e *GPTEntry) UnmarshalBinary(b []byte) error {
	if len(b) < GPTEntrySize {
		return ErrShortSector
	}
	le := binary.LittleEndian
	copy(e.TypeGUID[:], b[offEntryTypeGUID:])
	copy(e.UUID[:], b[offEntryUUID:])
	e.First = le.Uint64(b[offEntryFirst:])
	e.Last = le.Uint64(b[offEntryLast:])
	e.Attributes = le.Uint64(b[offEntryAttrs:])
	units := make([]uint16, 0, entryNameUnits)
	for i := 0; i < entryNameUnits; i++ {
		u := le.Uint16(b[offEntryName+2*i:])
		if u == 0 {
			break
		}
		units = append(units, u)
	}
	e.Name = string(utf16.Decode(units))
	return nil
}

// MarshalBinary encodes the entry; a name longer than 36 UTF-16 units is
// an error.
func (e *GPTEntry) MarshalBinary() ([]byte, error) {
	units := utf16.Encode([]rune(e.Name))
	if len(units) > entryNameUnits {
		return nil, fmt.Errorf("partition name %q: longer than %d UTF-16 units", e.Name, entryNameUnits)
	}
	b := make([]byte, GPTEntrySize)
	le := binary.LittleEndian
	copy(b[offEntryTypeGUID:], e.TypeGUID[:])
	copy(b[offEntryUUID:], e.UUID[:])
	le.PutUint64(b[offEntryFirst:], e.First)
	le.PutUint64(b[offEntryLast:], e.Last)
	le.PutUint64(b[offEntryAttrs:], e.Attributes)
	for i, u := range units {
		le.PutUint16(b[offEntryName+2*i:], u)
	}
	return b, nil
}

// gptCopy is a header that passed every check, with its entry array.
type gptCopy struct {
	h       GPTHeader
	entries []byte
}

// readGPTAt reads and checks the header at lba; nil when it is not valid.
func (d *disk) readGPTAt(lba uint64) (*gptCopy, error) {
	b, on, err := d.readSectors(lba, 1)
	if err != nil || !on {
		return nil, err
	}
	var h GPTHeader
	if h.UnmarshalBinary(b) != nil || !h.headerSizeOK || !h.crcOK || h.MyLBA != lba {
		return nil, nil
	}
	last := d.sectors - 1
	if h.FirstUsable > last || h.LastUsable > last || h.LastUsable < h.FirstUsable {
		return nil, nil
	}
	if h.EntrySize != GPTEntrySize {
		return nil, nil
	}
	size := uint64(h.NumEntries) * GPTEntrySize
	if size > maxEntryArray {
		return nil, nil
	}
	entries, on, err := d.readSectors(h.EntryLBA, (size+SectorSize-1)/SectorSize)
	if err != nil || !on {
		return nil, err
	}
	entries = entries[:size]
	if crc32.ChecksumIEEE(entries) != h.EntryArrayCRC {
		return nil, nil
	}
	return &gptCopy{h: h, entries: entries}, nil
}

// protective reports whether sector 0 is a protective (or hybrid) MBR: the
// signature and a slot of type 0xEE that starts at LBA 1.
func (d *disk) protective() (bool, error) {
	b, on, err := d.readSectors(0, 1)
	if err != nil || !on {
		return false, err
	}
	var m MBR
	m.UnmarshalBinary(b)
	if !m.Signed() {
		return false, nil
	}
	for _, e := range m.Entries {
		if e.Type == TypeGPT && e.Start == 1 {
			return true, nil
		}
	}
	return false, nil
}

// readGPT reads a GPT into t and raw; ok reports that one was recognised.
func (d *disk) readGPT(t *Table, raw *[]Partition) (ok bool, err error) {
	if d.sectors < 2 {
		return false, nil
	}
	if pm, err := d.protective(); err != nil || !pm {
		return false, err
	}
	p, err := d.readGPTAt(1)
	if err != nil || p == nil {
		return false, err
	}
	a, err := d.readGPTAt(p.h.AltLBA)
	if err != nil {
		return false, err
	}
	if a != nil {
		t.warnings = compareGPT(&p.h, &a.h, d.sectors-1)
	} else {
		t.warnings = append(t.warnings, "Alternate GPT is invalid, using primary GPT.")
	}
	t.Kind = GPT
	last := d.sectors - 1
	for i := 0; i < int(p.h.NumEntries) && i < MaxPartitions; i++ {
		var e GPTEntry
		e.UnmarshalBinary(p.entries[i*GPTEntrySize:])
		if !e.Used() || e.First > last || e.Last > last {
			continue
		}
		size := e.Last - e.First + 1 // 0 when First is Last+1: dropped
		if e.First > e.Last && size != 0 {
			size = d.sectors - e.First // see the package comment
		}
		*raw = append(*raw, Partition{Number: i + 1, Start: e.First, Sectors: size, TypeGUID: e.TypeGUID, UUID: e.UUID})
		t.listing = append(t.listing, i+1)
	}
	return true, nil
}

// compareGPT returns Linux's warnings for a primary header p and a valid
// backup a that disagree, or that are not where a disk of last LBA last
// has them.
func compareGPT(p, a *GPTHeader, last uint64) []string {
	var w []string
	lbas := func(msg string, x, y uint64) {
		w = append(w, "GPT:"+msg, fmt.Sprintf("GPT:%d != %d", int64(x), int64(y)))
	}
	if p.MyLBA != a.AltLBA {
		lbas("Primary header LBA != Alt. header alternate_lba", p.MyLBA, a.AltLBA)
	}
	if p.AltLBA != a.MyLBA {
		lbas("Primary header alternate_lba != Alt. header my_lba", p.AltLBA, a.MyLBA)
	}
	if p.FirstUsable != a.FirstUsable {
		lbas("first_usable_lbas don't match.", p.FirstUsable, a.FirstUsable)
	}
	if p.LastUsable != a.LastUsable {
		lbas("last_usable_lbas don't match.", p.LastUsable, a.LastUsable)
	}
	if p.DiskGUID != a.DiskGUID {
		w = append(w, "GPT:disk_guids don't match.")
	}
	if p.NumEntries != a.NumEntries {
		w = append(w, fmt.Sprintf("GPT:num_partition_entries don't match: 0x%x != 0x%x", p.NumEntries, a.NumEntries))
	}
	if p.EntrySize != a.EntrySize {
		w = append(w, fmt.Sprintf("GPT:sizeof_partition_entry values don't match: 0x%x != 0x%x", p.EntrySize, a.EntrySize))
	}
	if p.EntryArrayCRC != a.EntryArrayCRC {
		w = append(w, fmt.Sprintf("GPT:partition_entry_array_crc32 values don't match: 0x%x != 0x%x", p.EntryArrayCRC, a.EntryArrayCRC))
	}
	if p.AltLBA != last {
		lbas("Primary header thinks Alt. header is not at the end of the disk.", p.AltLBA, last)
	}
	if a.MyLBA != last {
		lbas("Alternate GPT header not at the end of the disk.", a.MyLBA, last)
	}
	if len(w) > 0 {
		w = append(w, "GPT: Use GNU Parted to correct GPT errors.")
	}
	return w
}
