package procstatus

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

const sample = `Name:	dd
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
CapEff:	00000000002000a3
CapBnd:	000001ffffffffff
`

func TestParse(t *testing.T) {
	st, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Uid: [4]uint32{1000, 1001, 1002, 1003}, Gid: [4]uint32{100, 101, 102, 103}, Groups: []uint32{6, 24, 1000}, CapEff: 0x2000a3}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("Parse = %+v; want %+v", st, want)
	}
	if !st.HasCap(21) || st.HasCap(2) || st.HasCap(99) {
		t.Errorf("HasCap wrong for %#x", st.CapEff)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrIncomplete},
		{"Uid:\t1 1 1 1\nGid:\t1 1 1 1\n", ErrIncomplete},
		{"Uid:\t1\t2\nGid:\t1 1 1 1\nCapEff:\t0\n", ErrMalformed},
		{"Uid:\t1 1 1 -1\nGid:\t1 1 1 1\nCapEff:\t0\n", ErrMalformed},
		{"Uid:\t1 1 1 x\nGid:\t1 1 1 1\nCapEff:\t0\n", ErrMalformed},
		{"Uid:\t1 1 1 1\nGid:\t1 1 1 1\nGroups:\tx\nCapEff:\t0\n", ErrMalformed},
		{"Uid:\t1 1 1 1\nGid:\t1 1 1 1\nCapEff:\tzz\n", ErrMalformed},
		{"Uid:\t1 1 1 99999999999\nGid:\t1 1 1 1\nCapEff:\t0\n", ErrMalformed},
	} {
		if _, err := Parse(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("Parse(%q) = %v; want %v", tc.in, err, tc.want)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts reads back the same
// from the lines it would be printed as.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\t000001ffffffffff\n")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(format(st))
		if err != nil || !reflect.DeepEqual(normal(st), normal(again)) {
			t.Fatalf("re-parse of %+v: %+v, %v", st, again, err)
		}
	})
}

func normal(s Status) Status {
	if len(s.Groups) == 0 {
		s.Groups = nil
	}
	return s
}

func format(s Status) string {
	line := func(k string, ids [4]uint32) string {
		return fmt.Sprintf("%s:\t%d\t%d\t%d\t%d\n", k, ids[0], ids[1], ids[2], ids[3])
	}
	g := "Groups:\t"
	for _, id := range s.Groups {
		g += fmt.Sprint(id) + " "
	}
	return line("Uid", s.Uid) + line("Gid", s.Gid) + g + fmt.Sprintf("\nCapEff:\t%016x\n", s.CapEff)
}

// TestHasCap keeps the mount emulator's former HasCap cases.
func TestHasCap(t *testing.T) {
	full := "Name:\tmount\nUid:\t0 0 0 0\nGid:\t0 0 0 0\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n"
	const capSysAdmin = 21
	if st, err := Parse(full); err != nil || !st.HasCap(capSysAdmin) {
		t.Error("full CapEff lacks CAP_SYS_ADMIN")
	}
	ids := "Uid:\t0 0 0 0\nGid:\t0 0 0 0\n"
	for _, eff := range []string{"0000000000000000", "00000000001fffff"} {
		if st, err := Parse(ids + "CapEff:\t" + eff + "\n"); err != nil || st.HasCap(capSysAdmin) {
			t.Errorf("CAP_SYS_ADMIN found in %s", eff)
		}
	}
	if _, err := Parse(""); err == nil {
		t.Error("empty status accepted")
	}
	if _, err := Parse(ids + "CapEff:\tzz\n"); err == nil {
		t.Error("bad CapEff accepted")
	}
	if st, _ := Parse(ids + "CapEff:\t1\n"); st.HasCap(99) {
		t.Error("HasCap true for capability 99")
	}
}
