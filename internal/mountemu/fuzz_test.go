package mountemu

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzLoopInfo(f *testing.F) {
	li := sampleLoopInfo()
	b, _ := li.MarshalBinary()
	f.Add(b)
	f.Add(make([]byte, LoopInfo64Size))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var li LoopInfo
		if err := li.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := li.MarshalBinary()
		if !bytes.Equal(out, b[:LoopInfo64Size]) {
			t.Fatalf("re-encoding changed the bytes")
		}
		_ = li.Name()
	})
}

func FuzzLoopConfig(f *testing.F) {
	c := LoopConfig{FD: 3, Info: sampleLoopInfo()}
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var c LoopConfig
		if err := c.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := c.MarshalBinary()
		var back LoopConfig
		if err := back.UnmarshalBinary(out); err != nil || back != c {
			t.Fatalf("decode-encode-decode not stable")
		}
	})
}

func FuzzNotif(f *testing.F) {
	n := Notif{ID: 1, Pid: 2, Nr: 165, Arch: 0xC000003E, Args: [6]uint64{1, 2, 3}}
	b, _ := n.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Notif
		if err := n.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := n.MarshalBinary()
		if !bytes.Equal(out, b[:NotifSize]) {
			t.Fatalf("re-encoding changed the bytes")
		}
	})
}

func FuzzParseHostfsData(f *testing.F) {
	for _, s := range []string{"", "/", "/home", "/home,ro", "ro", "/a,b", "/../..", "x//y", "/a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseHostfsData(s)
		if err != nil {
			return
		}
		if o.Path != "" && (!strings.HasPrefix(o.Path, "/") || strings.Contains(o.Path, "/../") || strings.HasSuffix(o.Path, "/..") || o.Path == "/") {
			t.Fatalf("ParseHostfsData(%q).Path = %q: not a clean absolute path", s, o.Path)
		}
		if o.Path != "" && !strings.Contains(o.Path, ",") {
			again, err := ParseHostfsData(o.Path)
			if err != nil || again.Path != o.Path {
				t.Fatalf("not idempotent: %q -> %q -> %q", s, o.Path, again.Path)
			}
		}
	})
}

func FuzzSysinfo(f *testing.F) {
	si := Sysinfo{Uptime: 12, Loads: [3]uint64{1, 2, 3}, TotalRAM: 64 << 20, FreeRAM: 1 << 20, Procs: 7, MemUnit: 1}
	b, _ := si.MarshalBinary()
	f.Add(b)
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var si Sysinfo
		if err := si.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := si.MarshalBinary()
		var back Sysinfo
		if err := back.UnmarshalBinary(out); err != nil || back != si {
			t.Fatalf("decode-encode-decode not stable: %+v, %+v", si, back)
		}
	})
}
