package plan

import (
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"testing"
)

func samplePlan() *Plan {
	return &Plan{
		WorkDir: "/home/u/.uml/vm1/.kernel", Root: Root{Kind: RootImage, Path: "/img", Unit: 0, FUSE2FS: "/usr/bin/fuse2fs"},
		Init: "/sbin/init", InitArgs: []string{"single"}, InitEnv: []string{"TERM=linux"}, Hostname: "(none)",
		Disks:   []Disk{{Unit: 0, File: "/img", IDs: []FileIdent{{Dev: 2049, Ino: 12}}}, {Unit: 1, File: "/cow", Backing: "/base"}},
		Cmdline: "ubd0=/img root=/dev/ubda",
		Mem:     64 << 20, MemCgroup: &MemCgroup{Dir: "/sys/fs/cgroup/memory/umlkit-vm1", Root: "/sys/fs/cgroup/memory"},
		Eth:      []Eth{{Unit: 0, MAC: [6]byte{0xfe, 0xfd, 1, 2, 3, 4}, Transport: "daemon", Params: []byte(`{"switch":"AA=="}`)}},
		Consoles: Consoles{Lines: []Line{{N: 0, Spec: "fd:0,fd:1"}, {Serial: true, N: 3, Spec: "port:9000"}}, Umid: "vm1", Ports: []int{9000}},
		Hostfs:   Hostfs{Root: "/srv"},
		Initrd:   &Initrd{Path: "initrd.gz", Size: 1234, RDInit: "/init", TmpfsSize: 64 << 20},
	}
}

func TestPlanRoundTrip(t *testing.T) {
	p := samplePlan()
	s, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("Decode(Encode(p)) = %+v; want %+v", got, p)
	}
	if _, err := Decode(""); err == nil {
		t.Error("Decode(\"\") succeeded")
	}
	if _, err := Decode("{"); err == nil {
		t.Error("Decode(\"{\") succeeded")
	}
}

func TestLineNameDiskName(t *testing.T) {
	if got := (Line{Serial: true, N: 12}).Name(); got != "ssl12" {
		t.Errorf("Name = %q; want ssl12", got)
	}
	if got := (Line{N: 1}).Name(); got != "con1" {
		t.Errorf("Name = %q; want con1", got)
	}
	if got := DiskName(2); got != "ubdc" {
		t.Errorf("DiskName(2) = %q; want ubdc", got)
	}
}

func TestReplyCodes(t *testing.T) {
	req := &Request{Seq: 7, Op: OpUbdRemove, Unit: 3}
	tests := []struct {
		err  error
		want error
		msg  string
	}{
		{Errorf(CodeBusy, "busy"), ErrBusy, "busy"},
		{fmt.Errorf("ubdc: %w", Errorf(CodeNoDevice, "Device doesn't exist")), ErrNoDevice, "ubdc: Device doesn't exist"},
		{errors.New("plain"), ErrFailed, "plain"},
		{ErrNotRunning, ErrNotRunning, "not running"},
	}
	for _, tt := range tests {
		r := ReplyTo(req, "", tt.err)
		b, err := MarshalReply(&r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalReply(b)
		if err != nil {
			t.Fatal(err)
		}
		got := back.Err()
		if !errors.Is(got, tt.want) || got.Error() != tt.msg || back.Seq != 7 {
			t.Errorf("reply for %v = %v (seq %d); want Is %v, text %q", tt.err, got, back.Seq, tt.want, tt.msg)
		}
		if errors.Is(got, ErrExists) {
			t.Errorf("%v Is ErrExists", got)
		}
	}
	ok := ReplyTo(req, "text", nil)
	if ok.Err() != nil || ok.Text != "text" {
		t.Errorf("ReplyTo(ok) = %+v", ok)
	}
}

func TestRequestValidate(t *testing.T) {
	bad := []string{
		`{"op":"frobnicate"}`, `{"op":"ubd-add"}`, `{"op":"ubd-add","disk":{"unit":16}}`, `{"op":"eth-add"}`,
		`{"op":"sysrq"}`, `{"op":"eth-remove"}`, `{"op":"ubd-remove","unit":-1}`, `[]`, `{"op":`,
	}
	for _, s := range bad {
		if _, err := UnmarshalRequest([]byte(s)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("UnmarshalRequest(%s) = %v; want ErrBadRequest", s, err)
		}
	}
	good := &Request{Seq: 1, Op: OpEthAdd, Eth: &Eth{Unit: 2, Transport: "mcast"}}
	b, _ := MarshalRequest(good)
	got, err := UnmarshalRequest(b)
	if err != nil || !reflect.DeepEqual(got, good) {
		t.Errorf("UnmarshalRequest(MarshalRequest(r)) = %+v, %v; want %+v", got, err, good)
	}
}

func TestHostReply(t *testing.T) {
	err := fmt.Errorf("open /x: %w", syscall.EACCES)
	r := HostReplyTo(err)
	b, _ := MarshalHostReply(&r)
	back, err2 := UnmarshalHostReply(b)
	if err2 != nil {
		t.Fatal(err2)
	}
	got := back.Err()
	if !errors.Is(got, syscall.EACCES) || got.Error() != "open /x: permission denied" {
		t.Errorf("host reply error = %v; want EACCES with its text", got)
	}
	ok := HostReplyTo(nil)
	if ok.Err() != nil {
		t.Errorf("HostReplyTo(nil).Err() = %v", ok.Err())
	}
	for _, s := range []string{`{"op":"open","path":"rel"}`, `{"op":"guard"}`, `{"op":"rm -rf"}`, `{"op":"xterm","n":-1}`} {
		if _, err := UnmarshalHostRequest([]byte(s)); !errors.Is(err, ErrBadHostRequest) {
			t.Errorf("UnmarshalHostRequest(%s) = %v; want ErrBadHostRequest", s, err)
		}
	}
}

func TestGuestRoundTrip(t *testing.T) {
	g := &Guest{RootMount: "/w/root", Init: "/init", Devices: map[string]string{"ubda": "/w/disks/ubda"}, Console: "/dev/pts/3",
		Views: map[string]string{"proc/meminfo": "/w/proc/meminfo", "proc/cmdline": "/w/proc/cmdline"}}
	s, err := g.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeGuest(s)
	if err != nil || !reflect.DeepEqual(got, g) {
		t.Errorf("DecodeGuest(Encode(g)) = %+v, %v; want %+v", got, err, g)
	}
}
