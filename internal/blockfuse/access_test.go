//go:build linux

package blockfuse

import (
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/umlkit/umlkit/internal/procstatus"
)

func TestPermits(t *testing.T) {
	disk := Attr{Uid: 0, Gid: DiskGID, Mode: 0o660}
	const dacOverride, dacRead = 1 << capDacOverride, 1 << capDacReadSearch
	tests := []struct {
		name string
		a    Attr
		c    creds
		want uint32
		ok   bool
	}{
		{"owner reads", disk, creds{uid: 0, gid: 0}, mayRead, true},
		{"owner writes", disk, creds{uid: 0, gid: 0}, mayRead | mayWrite, true},
		{"other reads", disk, creds{uid: 1000, gid: 1000}, mayRead, false},
		{"other writes", disk, creds{uid: 1000, gid: 1000}, mayWrite, false},
		{"group by gid", disk, creds{uid: 1000, gid: DiskGID}, mayRead | mayWrite, true},
		{"group by supplementary", disk, creds{uid: 1000, gid: 1000, groups: []uint32{24, DiskGID}}, mayRead | mayWrite, true},
		{"owner class only", Attr{Uid: 1000, Gid: DiskGID, Mode: 0o066}, creds{uid: 1000, gid: DiskGID}, mayRead, false},
		{"group class only", Attr{Gid: DiskGID, Mode: 0o606}, creds{uid: 1000, gid: DiskGID}, mayRead, false},
		{"others' bits", Attr{Gid: DiskGID, Mode: 0o664}, creds{uid: 1000, gid: 1000}, mayRead, true},
		{"others' bits, no write", Attr{Gid: DiskGID, Mode: 0o664}, creds{uid: 1000, gid: 1000}, mayWrite, false},
		{"dac_override", Attr{Mode: 0}, creds{uid: 1000, gid: 1000, caps: dacOverride}, mayRead | mayWrite, true},
		{"dac_read_search reads", Attr{Mode: 0}, creds{uid: 1000, gid: 1000, caps: dacRead}, mayRead, true},
		{"dac_read_search cannot write", Attr{Mode: 0}, creds{uid: 1000, gid: 1000, caps: dacRead}, mayWrite, false},
		{"root without capabilities", Attr{Uid: 5, Mode: 0o600}, creds{uid: 0, gid: 0}, mayRead, false},
	}
	for _, tt := range tests {
		if got := permits(tt.a, &tt.c, tt.want); got != tt.ok {
			t.Errorf("%s: permits(%+v, %+v, %o) = %v; want %v", tt.name, tt.a, tt.c, tt.want, got, tt.ok)
		}
	}
}

func TestMayChange(t *testing.T) {
	a := Attr{Uid: 1000, Gid: DiskGID, Mode: 0o660}
	chmod := func(m uint32) *fuse.SetAttrIn {
		in := &fuse.SetAttrIn{}
		in.Valid, in.Mode = fuse.FATTR_MODE, syscall.S_IFREG|m
		return in
	}
	chown := func(uid, gid int64) *fuse.SetAttrIn {
		in := &fuse.SetAttrIn{}
		if uid >= 0 {
			in.Valid |= fuse.FATTR_UID
			in.Uid = uint32(uid)
		}
		if gid >= 0 {
			in.Valid |= fuse.FATTR_GID
			in.Gid = uint32(gid)
		}
		return in
	}
	owner := creds{uid: 1000, gid: 1000, groups: []uint32{50}}
	other := creds{uid: 2000, gid: DiskGID}
	root := creds{uid: 0, caps: 1<<capChown | 1<<capFowner}
	tests := []struct {
		name string
		a    Attr
		c    creds
		in   *fuse.SetAttrIn
		ok   bool
	}{
		{"owner chmod", a, owner, chmod(0o600), true},
		{"other chmod", a, other, chmod(0o666), false},
		{"root chmod", a, root, chmod(0o666), true},
		{"same mode by other", a, other, chmod(0o660), true},
		{"other clears set-id", Attr{Uid: 1000, Mode: 0o6660}, other, chmod(0o660), true},
		{"other sets set-id", a, other, chmod(0o4660), false},
		{"owner gives away", a, owner, chown(2000, -1), false},
		{"root gives", a, root, chown(2000, 7), true},
		{"owner chgrp to own group", a, owner, chown(-1, 50), true},
		{"owner chgrp to a foreign group", a, owner, chown(-1, 51), false},
		{"other chgrp", a, other, chown(-1, DiskGID), true}, // no change
		{"other chgrp to its group", Attr{Uid: 1000, Gid: 5, Mode: 0o660}, other, chown(-1, DiskGID), false},
		{"times only", a, other, &fuse.SetAttrIn{}, true},
	}
	for _, tt := range tests {
		if got := mayChange(tt.a, &tt.c, tt.in); got != tt.ok {
			t.Errorf("%s: mayChange(%+v, %+v, valid %#x) = %v; want %v", tt.name, tt.a, tt.c, tt.in.Valid, got, tt.ok)
		}
	}
}

func TestOpenWant(t *testing.T) {
	for flags, want := range map[uint32]uint32{
		syscall.O_RDONLY:                   mayRead,
		syscall.O_WRONLY:                   mayWrite,
		syscall.O_RDWR:                     mayRead | mayWrite,
		syscall.O_RDONLY | syscall.O_TRUNC: mayRead | mayWrite,
		syscall.O_WRONLY | syscall.O_EXCL:  mayWrite,
	} {
		if got := openWant(flags); got != want {
			t.Errorf("openWant(%#o) = %o; want %o", flags, got, want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	const status = `Name:	dd
Umask:	0022
State:	R (running)
Tgid:	123
Uid:	1000	1001	1002	1003
Gid:	100	101	102	103
FDSize:	64
Groups:	6 24 1000 
NStgid:	123
CapInh:	0000000000000000
CapPrm:	0000000000000000
CapEff:	00000000000000a3
CapBnd:	000001ffffffffff
`
	st, err := procstatus.Parse(status)
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid[procstatus.FS] != 1003 || st.Gid[procstatus.FS] != 103 || !cmp.Equal(st.Groups, []uint32{6, 24, 1000}) || st.CapEff != 0xa3 {
		t.Errorf("the export reads %+v of the status", st)
	}
	for _, bad := range []string{"Uid:\t1\t2\nGid:\t1 1 1 1\nCapEff:\t0\n", "Uid:\t1 1 1 1\nGid:\t1 1 1 1\n", "Uid:\t1 1 1 x\nGid:\t1 1 1 1\nCapEff:\t0\n"} {
		if _, err := procstatus.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestIDMap(t *testing.T) {
	r := parseIDMap([]byte("         0       1000          1\n         1     100000      65536\n"))
	for id, want := range map[uint32]bool{0: true, 1: true, 6: true, 65536: true, 65537: false} {
		if got := mapped(r, id); got != want {
			t.Errorf("mapped(%v, %d) = %v; want %v", r, id, got, want)
		}
	}
	single := parseIDMap([]byte("0 1000 1\n"))
	s := &Server{uids: single, gids: single}
	if got, want := s.usable(DefaultAttr), (Attr{Mode: 0o660}); got != want {
		t.Errorf("usable(DefaultAttr) under a single-id map = %+v; want %+v", got, want)
	}
	full := parseIDMap([]byte("0 0 4294967295\n"))
	s = &Server{uids: full, gids: full}
	if got := s.usable(DefaultAttr); got != DefaultAttr {
		t.Errorf("usable(DefaultAttr) under the identity map = %+v; want %+v", got, DefaultAttr)
	}
}
