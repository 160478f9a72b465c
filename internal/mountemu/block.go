package mountemu

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Block-device ioctl requests (linux/fs.h, linux/hdreg.h) that the guest's
// tools send to disks: the filter traps these only, and K answers them
// only on the device files it serves (BlockDevice); on any other file they
// continue to the host kernel.
const (
	BlkROGet         = 0x125e     // int: read-only
	BlkRRPart        = 0x125f     // re-read the partition table
	BlkGetSize       = 0x1260     // unsigned long: size in sectors
	BlkFlsBuf        = 0x1261     // flush
	BlkRAGet         = 0x1263     // long: read-ahead in sectors
	BlkSSZGet        = 0x1268     // int: logical sector size
	BlkBSZGet        = 0x80081270 // int: soft block size
	BlkGetSize64     = 0x80081272 // u64: size in bytes
	BlkDiscard       = 0x1277     // u64[2] {start, length}
	BlkIOMin         = 0x1278     // unsigned int: minimum I/O size
	BlkIOOpt         = 0x1279     // unsigned int: optimal I/O size
	BlkAlignOff      = 0x127a     // int: alignment offset
	BlkPBSZGet       = 0x127b     // unsigned int: physical sector size
	BlkDiscardZeroes = 0x127c     // unsigned int
	BlkSecDiscard    = 0x127d     // u64[2]
	BlkRotational    = 0x127e     // unsigned short
	BlkZeroOut       = 0x127f     // u64[2]
	HDIOGetGeo       = 0x0301     // struct hd_geometry
)

// blockRequests are the requests the filter sends to K.
var blockRequests = []uint32{BlkROGet, BlkRRPart, BlkGetSize, BlkFlsBuf, BlkRAGet, BlkSSZGet, BlkBSZGet,
	BlkGetSize64, BlkDiscard, BlkIOMin, BlkIOOpt, BlkAlignOff, BlkPBSZGet, BlkDiscardZeroes, BlkSecDiscard,
	BlkRotational, BlkZeroOut, HDIOGetGeo}

// IsBlockRequest reports whether the low 32 bits of an ioctl request are
// one of the block requests K answers.
func IsBlockRequest(req uint64) bool {
	for _, r := range blockRequests {
		if uint32(req) == r {
			return true
		}
	}
	return false
}

// BlockDevice is a device file K serves (a ubd disk, one of its partitions,
// a loop file), as the block ioctls see it.
type BlockDevice interface {
	Size() int64         // bytes
	ReadOnly() bool      // the disk is read-only
	Partition() bool     // a partition (BLKRRPART: EINVAL)
	StartSector() uint64 // a partition's first sector on its disk
	DiskSize() int64     // the whole disk's size (HDIO_GETGEO's cylinders)
	// Discard and ZeroOut act on [off, off+n) of the device; they return
	// an errno (EBUSY while the host kernel has the disk mounted, ...).
	Discard(off, n int64) error
	ZeroOut(off, n int64) error
	Flush() error
	// Rescan reads the partition table again: ErrNotPartitionable or
	// ErrBusy, as BLKRRPART answers.
	Rescan() error
}

// Errors of BlockDevice.Rescan.
var (
	ErrNotPartitionable = errors.New("not a partitionable device") // EINVAL
	ErrBusy             = errors.New("a partition is open")        // EBUSY
)

// UML's ubd geometry (HDIO_GETGEO): 128 heads, 32 sectors per track.
const (
	geoHeads   = 128
	geoSectors = 32
	// HDGeometrySize is the size of struct hd_geometry on x86_64.
	HDGeometrySize = 16
)

// Geometry encodes struct hd_geometry for a disk of diskSize bytes and a
// partition starting at start (sectors), as UML's ubd driver answers.
func Geometry(diskSize int64, start uint64) []byte {
	b := make([]byte, HDGeometrySize)
	b[0], b[1] = geoHeads, geoSectors
	ne.PutUint16(b[2:], uint16(diskSize/(geoHeads*geoSectors*512)))
	ne.PutUint64(b[8:], start)
	return b
}

// blockSize is the soft block size Linux gives a device at open: the
// largest power of two up to a page (4096) that divides its size.
func blockSize(size int64) int {
	bs := 512
	for bs < 4096 && size%int64(bs*2) == 0 {
		bs *= 2
	}
	return bs
}

// readAhead is UML's read-ahead: 128 KiB, in sectors.
const readAhead = 256

// blockIoctl answers a block request on one of K's device files; on any
// other file (or when K has no device files) the call continues.
func (s *Server) blockIoctl(n *Notif, valid func() bool) Reply {
	if s.cfg.Block == nil {
		return Reply{Continue: true}
	}
	req, arg := uint32(n.Args[1]), n.Args[2]
	f, err := takeFD(n.Pid, int(int32(n.Args[0])))
	if err != nil {
		return Reply{Continue: true} // a bad descriptor: the kernel says EBADF
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Reply{Continue: true}
	}
	dev, ok := s.cfg.Block(st.Dev, st.Ino)
	if !ok {
		return Reply{Continue: true}
	}
	fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if fl&unix.O_PATH != 0 {
		return Reply{Continue: true} // the kernel says EBADF
	}
	writable := fl&unix.O_ACCMODE != unix.O_RDONLY
	put := func(b []byte) Reply { return s.reply(n, arg, b, valid) }
	u32 := func(v uint32) Reply { b := make([]byte, 4); ne.PutUint32(b, v); return put(b) }
	u64 := func(v uint64) Reply { b := make([]byte, 8); ne.PutUint64(b, v); return put(b) }
	size := dev.Size()
	switch req {
	case BlkGetSize64:
		return u64(uint64(size))
	case BlkGetSize:
		return u64(uint64(size) / 512)
	case BlkSSZGet, BlkPBSZGet, BlkIOMin:
		return u32(512)
	case BlkIOOpt, BlkAlignOff, BlkDiscardZeroes:
		return u32(0)
	case BlkBSZGet:
		return u32(uint32(blockSize(size)))
	case BlkRAGet:
		return u64(readAhead)
	case BlkROGet:
		if dev.ReadOnly() {
			return u32(1)
		}
		return u32(0)
	case BlkRotational:
		return put([]byte{0, 0})
	case HDIOGetGeo:
		return put(Geometry(dev.DiskSize(), dev.StartSector()))
	case BlkFlsBuf, BlkRRPart:
		if _, admin := s.caller(n.Pid); !admin {
			return Reply{Errno: int32(unix.EACCES)}
		}
		if !valid() {
			return Reply{Errno: int32(unix.EINTR)}
		}
		if req == BlkFlsBuf {
			return errno(dev.Flush())
		}
		switch err := dev.Rescan(); {
		case errors.Is(err, ErrNotPartitionable):
			return Reply{Errno: int32(unix.EINVAL)}
		case errors.Is(err, ErrBusy):
			return Reply{Errno: int32(unix.EBUSY)}
		case err != nil:
			return errno(err)
		}
		return Reply{}
	case BlkDiscard, BlkZeroOut, BlkSecDiscard:
		if !writable {
			return Reply{Errno: int32(unix.EBADF)}
		}
		if req == BlkSecDiscard {
			return Reply{Errno: int32(unix.EOPNOTSUPP)}
		}
		mem, err := openMem(n.Pid, false)
		if err != nil {
			return errno(err)
		}
		b, err := mem.read(arg, 16)
		mem.Close()
		if err != nil {
			return errno(err)
		}
		start, length := ne.Uint64(b), ne.Uint64(b[8:])
		if start%512 != 0 || length%512 != 0 || start+length < start || start+length > uint64(size) {
			return Reply{Errno: int32(unix.EINVAL)}
		}
		if !valid() {
			return Reply{Errno: int32(unix.EINTR)}
		}
		if req == BlkDiscard {
			return errno(dev.Discard(int64(start), int64(length)))
		}
		return errno(dev.ZeroOut(int64(start), int64(length)))
	}
	return Reply{Continue: true}
}

// reply writes b to the caller's memory at addr and returns success; the
// notification must still be pending when it writes.
func (s *Server) reply(n *Notif, addr uint64, b []byte, valid func() bool) Reply {
	mem, err := openMem(n.Pid, true)
	if err != nil {
		return errno(err)
	}
	defer mem.Close()
	if !valid() {
		return Reply{Errno: int32(unix.EINTR)}
	}
	if err := mem.write(addr, b); err != nil {
		return errno(err)
	}
	return Reply{}
}
