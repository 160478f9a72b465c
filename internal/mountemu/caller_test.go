package mountemu

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/procstatus"
)

const sampleStatus = "Name:\tsh\nUid:\t1000\t1000\t1000\t1001\nGid:\t100\t100\t100\t101\nGroups:\t6 27 100 \nCapEff:\t00000000002000ff\n"

// TestCredsOf: the file-system ids, the groups and the effective set of a
// caller's status become the credentials the worker thread takes.
func TestCredsOf(t *testing.T) {
	st, err := procstatus.Parse(sampleStatus)
	if err != nil {
		t.Fatal(err)
	}
	c := credsOf(st)
	if c.fsuid != 1001 || c.fsgid != 101 || len(c.groups) != 3 || c.groups[0] != 6 || c.capEff != 0x2000ff {
		t.Fatalf("credsOf = %+v", c)
	}
	if c.capEff&(1<<unix.CAP_SYS_ADMIN) == 0 {
		t.Error("CAP_SYS_ADMIN not seen")
	}
}

// TestClaimDisk: a disk mounted read-write (the root, or by an earlier
// guest mount) refuses a second read-write mount by any of its names.
func TestClaimDisk(t *testing.T) {
	dir := t.TempDir()
	id := func(p string) FileID {
		os.WriteFile(p, []byte("x"), 0o644)
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return FileID{st.Dev, st.Ino}
	}
	root, export, other := filepath.Join(dir, "root.img"), filepath.Join(dir, "ubdb"), filepath.Join(dir, "other.img")
	rootPart, part1, part2 := filepath.Join(dir, "ubda1"), filepath.Join(dir, "ubdb1"), filepath.Join(dir, "ubdb2")
	disks := []DiskIDs{
		{Index: 0, Disk: 0, Name: "ubda", IDs: []FileID{id(root)}, Busy: true},
		{Index: 1, Disk: 1, Name: "ubdb", IDs: []FileID{id(export)}},
		{Index: 1001, Disk: 0, Part: 1, Name: "ubda1", IDs: []FileID{id(rootPart)}},
		{Index: 2001, Disk: 1, Part: 1, Name: "ubdb1", IDs: []FileID{id(part1)}},
		{Index: 2002, Disk: 1, Part: 2, Name: "ubdb2", IDs: []FileID{id(part2)}},
	}
	id(other)
	s := &Server{cfg: Config{Disks: func() []DiskIDs { return disks }}, rw: map[int]int{}}
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	if _, busy := s.claimDisk(open(root)); busy != "ubda" {
		t.Errorf("root disk: busy = %q; want ubda", busy)
	}
	if i, busy := s.claimDisk(open(export)); i != 1 || busy != "" {
		t.Errorf("first mount of ubdb: %d %q", i, busy)
	}
	if _, busy := s.claimDisk(open(export)); busy != "ubdb" {
		t.Errorf("second mount of ubdb: busy = %q", busy)
	}
	if i, busy := s.claimDisk(open(other)); i != -1 || busy != "" {
		t.Errorf("a file that is no disk: %d %q", i, busy)
	}
	if _, busy := s.claimDisk(open(rootPart)); busy != "ubda" {
		t.Errorf("a partition of the root disk: busy = %q; want ubda", busy)
	}
	if _, busy := s.claimDisk(open(part1)); busy != "ubdb" {
		t.Errorf("a partition of a disk mounted read-write: busy = %q; want ubdb", busy)
	}
	s.rw[1]-- // ubdb unmounted
	if i, busy := s.claimDisk(open(part1)); i != 2001 || busy != "" {
		t.Errorf("first mount of ubdb1: %d %q", i, busy)
	}
	if i, busy := s.claimDisk(open(part2)); i != 2002 || busy != "" {
		t.Errorf("ubdb2 while ubdb1 is mounted: %d %q", i, busy)
	}
	if _, busy := s.claimDisk(open(part1)); busy != "ubdb1" {
		t.Errorf("second mount of ubdb1: busy = %q", busy)
	}
	if _, busy := s.claimDisk(open(export)); busy != "ubdb1" && busy != "ubdb2" {
		t.Errorf("ubdb while its partitions are mounted: busy = %q", busy)
	}
}

func TestFilterDenies(t *testing.T) {
	if hostSysnums == nil {
		t.Skip("no filter on this architecture")
	}
	prog, err := program(*hostSysnums)
	if err != nil {
		t.Fatal(err)
	}
	eperm := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	for _, nr := range []uint32{unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_KEXEC_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE,
		unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD, unix.SYS_SYSLOG} {
		b := make([]byte, 64)
		putNr(b, nr, hostSysnums.arch)
		if got := runBPF(t, prog, b); got != eperm {
			t.Errorf("syscall %d: filter returns %#x; want EPERM", nr, got)
		}
	}
	for nr := uint32(0); nr < 460; nr++ { // every call: listed ones get their action, the rest ALLOW
		b := make([]byte, 64)
		putNr(b, nr, hostSysnums.arch)
		got := runBPF(t, prog, b)
		want := uint32(unix.SECCOMP_RET_ALLOW)
		switch {
		case nr == hostSysnums.mount || nr == hostSysnums.umount2:
			want = unix.SECCOMP_RET_USER_NOTIF
		case nr == hostSysnums.ioctl:
			continue // depends on the request (TestFilterProgram)
		case contains(hostSysnums.newAPI, nr):
			want = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		case contains(hostSysnums.denied, nr):
			want = eperm
		}
		if got != want {
			t.Errorf("syscall %d: filter returns %#x; want %#x", nr, got, want)
		}
	}
	for _, nr := range []uint32{unix.SYS_READ, unix.SYS_REBOOT, unix.SYS_VHANGUP, unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_PIVOT_ROOT} {
		b := make([]byte, 64)
		putNr(b, nr, hostSysnums.arch)
		if got := runBPF(t, prog, b); got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("syscall %d: filter returns %#x; want ALLOW", nr, got)
		}
	}
}

// putNr writes a seccomp_data's nr and arch fields.
func putNr(b []byte, nr, arch uint32) {
	binary.NativeEndian.PutUint32(b[0:], nr)
	binary.NativeEndian.PutUint32(b[4:], arch)
}

func contains(list []uint32, nr uint32) bool {
	for _, x := range list {
		if x == nr {
			return true
		}
	}
	return false
}

// TestFilterOtherABIs: the i386 ABI (int 0x80) gets the same refusals by
// its own numbers, x32 calls and unknown architectures fail.
func TestFilterOtherABIs(t *testing.T) {
	if hostSysnums == nil || hostSysnums.compat == nil {
		t.Skip("no compat ABI on this architecture")
	}
	prog, err := program(*hostSysnums)
	if err != nil {
		t.Fatal(err)
	}
	eperm := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	i386 := hostSysnums.compat.arch
	for _, tc := range []struct {
		name     string
		nr, arch uint32
		want     uint32
	}{
		{"i386 keyctl", 288, i386, eperm},
		{"i386 add_key", 286, i386, eperm},
		{"i386 bpf", 357, i386, eperm},
		{"i386 userfaultfd", 374, i386, eperm},
		{"i386 perf_event_open", 336, i386, eperm},
		{"i386 fsopen", 430, i386, enosys},
		{"i386 read", 3, i386, unix.SECCOMP_RET_ALLOW},
		{"i386 mount (native)", 21, i386, unix.SECCOMP_RET_ALLOW},
		{"x32 keyctl", 0x40000000 + unix.SYS_KEYCTL, hostSysnums.arch, enosys},
		{"x32 read", 0x40000000, hostSysnums.arch, enosys},
		{"unknown arch", 0, 0x12345678, enosys},
	} {
		b := make([]byte, 64)
		putNr(b, tc.nr, tc.arch)
		if got := runBPF(t, prog, b); got != tc.want {
			t.Errorf("%s: filter returns %#x; want %#x", tc.name, got, tc.want)
		}
	}
}
