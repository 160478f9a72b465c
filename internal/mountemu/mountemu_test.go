package mountemu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func sampleLoopInfo() LoopInfo {
	li := LoopInfo{Device: 0x801, Inode: 12, Offset: 4096, Sizelimit: 1 << 20, Number: 3, Flags: LoFlagsAutoclear | LoFlagsReadOnly}
	li.SetName("/dev/ubdb")
	return li
}

func TestLoopInfoRoundTrip(t *testing.T) {
	li := sampleLoopInfo()
	b, err := li.MarshalBinary()
	if err != nil || len(b) != LoopInfo64Size {
		t.Fatalf("MarshalBinary() = %d bytes, %v; want %d", len(b), err, LoopInfo64Size)
	}
	if got := binary.NativeEndian.Uint32(b[52:]); got != LoFlagsAutoclear|LoFlagsReadOnly {
		t.Errorf("lo_flags at offset 52 = %#x", got)
	}
	if !bytes.HasPrefix(b[56:], []byte("/dev/ubdb\x00")) {
		t.Errorf("lo_file_name at offset 56 = %q", b[56:70])
	}
	var back LoopInfo
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(li, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if back.Name() != "/dev/ubdb" {
		t.Errorf("Name() = %q", back.Name())
	}
	if err := back.UnmarshalBinary(b[:LoopInfo64Size-1]); err != ErrShortLoopInfo {
		t.Errorf("short buffer: err = %v; want ErrShortLoopInfo", err)
	}
}

func TestLoopInfoNameTruncated(t *testing.T) {
	var li LoopInfo
	li.SetName(string(bytes.Repeat([]byte("x"), 100)))
	if n := len(li.Name()); n != 63 {
		t.Errorf("len(Name()) after a 100-byte SetName = %d; want 63 (NUL-terminated)", n)
	}
}

func TestLoopConfigRoundTrip(t *testing.T) {
	c := LoopConfig{FD: 5, BlockSize: 512, Info: sampleLoopInfo()}
	b, _ := c.MarshalBinary()
	if len(b) != LoopConfigSize {
		t.Fatalf("len = %d; want %d", len(b), LoopConfigSize)
	}
	if binary.NativeEndian.Uint32(b) != 5 || binary.NativeEndian.Uint64(b[8+24:]) != 4096 {
		t.Errorf("fd or info.lo_offset at the wrong offset")
	}
	var back LoopConfig
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestNotifRoundTrip(t *testing.T) {
	n := Notif{ID: 99, Pid: 1234, Nr: unix.SYS_MOUNT, Arch: 0xC000003E, IP: 0x401000, Args: [6]uint64{1, 2, 3, 4, 5, 6}}
	b, _ := n.MarshalBinary()
	var back Notif
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back != n {
		t.Errorf("round trip = %+v; want %+v", back, n)
	}
	if err := back.UnmarshalBinary(b[:NotifSize-1]); err != ErrShortNotif {
		t.Errorf("short: %v", err)
	}
}

func TestEncodeResp(t *testing.T) {
	for _, tc := range []struct {
		r     Reply
		val   int64
		err   int32
		flags uint32
	}{
		{Reply{Continue: true}, 0, 0, flagContinue},
		{Reply{Errno: int32(unix.EINVAL)}, 0, -int32(unix.EINVAL), 0},
		{Reply{Val: 3}, 3, 0, 0},
	} {
		b := encodeResp(7, tc.r)
		if len(b) != NotifRespSize || binary.NativeEndian.Uint64(b) != 7 ||
			int64(binary.NativeEndian.Uint64(b[8:])) != tc.val || int32(binary.NativeEndian.Uint32(b[16:])) != tc.err ||
			binary.NativeEndian.Uint32(b[20:]) != tc.flags {
			t.Errorf("encodeResp(7, %+v) = %x", tc.r, b)
		}
	}
}

func TestParseHostfsData(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want HostfsOptions
	}{
		{"", HostfsOptions{}},
		{"/", HostfsOptions{}},
		{"/home", HostfsOptions{Path: "/home"}},
		{"home/", HostfsOptions{Path: "/home"}},
		{"/home,ro", HostfsOptions{Path: "/home", ReadOnly: true}},
		{"/home,noatime,ro", HostfsOptions{Path: "/home", ReadOnly: true}},
		{"ro", HostfsOptions{ReadOnly: true}},
		{"/a,b", HostfsOptions{Path: "/a,b"}},
		{"/../../etc", HostfsOptions{Path: "/etc"}},
		{"/x//y/./z", HostfsOptions{Path: "/x/y/z"}},
	} {
		got, err := ParseHostfsData(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseHostfsData(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseHostfsData("/a\x00b"); err != ErrBadHostfsData {
		t.Errorf("NUL in data: err = %v; want ErrBadHostfsData", err)
	}
}

func TestIsLoopRequest(t *testing.T) {
	for req, want := range map[uint64]bool{
		LoopSetFD: true, LoopConfigure: true, LoopCtlGetFree: true, LoopCtlAdd: true,
		0x4C0B: false, 0x4C7F: false, 0x4C83: false, unix.TCGETS: false, 0xffffffff00004C05: true,
	} {
		if got := IsLoopRequest(req); got != want {
			t.Errorf("IsLoopRequest(%#x) = %v; want %v", req, got, want)
		}
	}
}

// Every block request the filter traps is one IsBlockRequest knows, and
// every one of them reaches K through the filter.
func TestBlockRequests(t *testing.T) {
	s := sysnums{arch: 0xC000003E, mount: 165, umount2: 166, ioctl: 16}
	prog, err := program(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range blockRequests {
		if !IsBlockRequest(uint64(r)) || !IsBlockRequest(0xffffffff00000000|uint64(r)) {
			t.Errorf("IsBlockRequest(%#x) = false", r)
		}
		b := make([]byte, 64)
		binary.NativeEndian.PutUint32(b[0:], 16)
		binary.NativeEndian.PutUint32(b[4:], 0xC000003E)
		binary.NativeEndian.PutUint64(b[24:], uint64(r))
		if got := runBPF(t, prog, b); got != unix.SECCOMP_RET_USER_NOTIF {
			t.Errorf("ioctl %#x: filter returns %#x", r, got)
		}
	}
	for _, r := range []uint64{0x125d, 0x1269, unix.TCGETS, LoopSetFD} {
		if IsBlockRequest(r) {
			t.Errorf("IsBlockRequest(%#x) = true", r)
		}
	}
}

func TestGeometry(t *testing.T) {
	// 1 GiB: 512 cylinders of 128 heads * 32 sectors; a partition at 2048.
	b := Geometry(1<<30, 2048)
	if b[0] != 128 || b[1] != 32 || binary.NativeEndian.Uint16(b[2:]) != 512 || binary.NativeEndian.Uint64(b[8:]) != 2048 {
		t.Errorf("Geometry = % x", b)
	}
	huge := int64(1)<<50 + 5*128*32*512
	if c := binary.NativeEndian.Uint16(Geometry(huge, 0)[2:]); c != 5 {
		t.Errorf("cylinders of a huge disk = %d; want the low 16 bits", c)
	}
	for size, want := range map[int64]int{1 << 30: 4096, 1024: 1024, 512: 512, 3 * 512: 512, 6 * 512: 1024, 8 * 1 << 20: 4096} {
		if got := blockSize(size); got != want {
			t.Errorf("blockSize(%d) = %d; want %d", size, got, want)
		}
	}
}

func TestHasExtMagic(t *testing.T) {
	b := make([]byte, 2048)
	if HasExtMagic(b) {
		t.Error("zeros have the ext magic")
	}
	b[1080], b[1081] = 0x53, 0xEF
	if !HasExtMagic(b) || HasExtMagic(b[:1081]) {
		t.Error("HasExtMagic wrong on a superblock / a short buffer")
	}
}

// runBPF interprets the classic BPF subset the filter uses.
func runBPF(t *testing.T, prog []unix.SockFilter, data []byte) uint32 {
	t.Helper()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.NativeEndian.Uint32(data[in.K:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			var ok bool
			switch in.Code & 0xf0 {
			case unix.BPF_JEQ:
				ok = a == in.K
			case unix.BPF_JGE:
				ok = a >= in.K
			case unix.BPF_JGT:
				ok = a > in.K
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("unexpected BPF op %#x", in.Code)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

func TestFilterProgram(t *testing.T) {
	s := sysnums{arch: 0xC000003E, mount: 165, umount2: 166, ioctl: 16, newAPI: []uint32{428, 429, 430, 431, 432, 433, 442}}
	prog, err := program(s)
	if err != nil {
		t.Fatal(err)
	}
	data := func(arch uint32, nr int32, arg1 uint64) []byte {
		b := make([]byte, 64)
		binary.NativeEndian.PutUint32(b[0:], uint32(nr))
		binary.NativeEndian.PutUint32(b[4:], arch)
		binary.NativeEndian.PutUint64(b[24:], arg1)
		return b
	}
	const x86 = 0xC000003E
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	for _, tc := range []struct {
		name string
		arch uint32
		nr   int32
		arg1 uint64
		want uint32
	}{
		{"mount", x86, 165, 0, unix.SECCOMP_RET_USER_NOTIF},
		{"umount2", x86, 166, 0, unix.SECCOMP_RET_USER_NOTIF},
		{"getppid", x86, 110, 0, unix.SECCOMP_RET_ALLOW},
		{"ioctl TCGETS", x86, 16, unix.TCGETS, unix.SECCOMP_RET_ALLOW},
		{"ioctl LOOP_SET_FD", x86, 16, LoopSetFD, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl LOOP_CONFIGURE", x86, 16, LoopConfigure, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl 0x4C0B", x86, 16, 0x4C0B, unix.SECCOMP_RET_ALLOW},
		{"ioctl LOOP_CTL_ADD", x86, 16, LoopCtlAdd, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl LOOP_CTL_GET_FREE", x86, 16, LoopCtlGetFree, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl 0x4C83", x86, 16, 0x4C83, unix.SECCOMP_RET_ALLOW},
		{"ioctl BLKGETSIZE64", x86, 16, BlkGetSize64, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl BLKRRPART", x86, 16, BlkRRPart, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl HDIO_GETGEO", x86, 16, HDIOGetGeo, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl BLKZEROOUT", x86, 16, BlkZeroOut, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl BLKBSZGET", x86, 16, BlkBSZGet, unix.SECCOMP_RET_USER_NOTIF},
		{"ioctl BLKROSET", x86, 16, 0x125d, unix.SECCOMP_RET_ALLOW},
		{"ioctl BLKPG", x86, 16, 0x1269, unix.SECCOMP_RET_ALLOW},
		{"ioctl BLKBSZSET", x86, 16, 0x40081271, unix.SECCOMP_RET_ALLOW},
		{"ioctl FIONREAD", x86, 16, 0x541B, unix.SECCOMP_RET_ALLOW},
		{"ioctl TIOCGWINSZ", x86, 16, unix.TIOCGWINSZ, unix.SECCOMP_RET_ALLOW},
		{"ioctl high bits set", x86, 16, 0xffffffff00004C05, unix.SECCOMP_RET_USER_NOTIF},
		{"fsopen", x86, 430, 0, enosys},
		{"open_tree", x86, 428, 0, enosys},
		{"mount_setattr", x86, 442, 0, enosys},
		{"other arch mount", 0x40000003, 165, 0, unix.SECCOMP_RET_ALLOW},
		{"sysinfo untrapped", x86, 99, 0, unix.SECCOMP_RET_ALLOW},
	} {
		if got := runBPF(t, prog, data(tc.arch, tc.nr, tc.arg1)); got != tc.want {
			t.Errorf("%s: filter returns %#x; want %#x", tc.name, got, tc.want)
		}
	}
	s.sysinfo, s.trapSysinfo = 99, true
	if prog, err = program(s); err != nil {
		t.Fatal(err)
	}
	for nr, want := range map[int32]uint32{99: unix.SECCOMP_RET_USER_NOTIF, 165: unix.SECCOMP_RET_USER_NOTIF, 98: unix.SECCOMP_RET_ALLOW, 100: unix.SECCOMP_RET_ALLOW} {
		if got := runBPF(t, prog, data(x86, nr, 0)); got != want {
			t.Errorf("with sysinfo trapped, call %d: filter returns %#x; want %#x", nr, got, want)
		}
	}
}

func TestAssembleBadJump(t *testing.T) {
	if _, err := assemble([]insn{jeq(1, "nowhere", "")}); err == nil {
		t.Error("assemble accepted a jump to a missing label")
	}
}
