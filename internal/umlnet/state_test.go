//go:build linux

package umlnet

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/netsetup"
)

// fakeOps is a host with a set of live taps and sysctl values.
type fakeOps struct {
	live        map[int]bool
	sysctl      map[string]string
	unpublished []string
}

func (f *fakeOps) alive(t tapState) bool { return f.live[t.Index] }
func (f *fakeOps) unpublish(dev string, index int, a netip.Addr) {
	f.unpublished = append(f.unpublished, a.String()+"@"+dev)
}
func (f *fakeOps) readSysctl(rel string) (string, error) { return f.sysctl[rel], nil }
func (f *fakeOps) writeSysctl(rel, v string) error       { f.sysctl[rel] = v; return nil }

func TestStoreLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uml_net")
	ops := &fakeOps{live: map[int]bool{}, sysctl: map[string]string{netsetup.IPForwardPath: "0"}}
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	// First tap: ip_forward's old value is recorded before it is set.
	ops.live[7] = true
	s.addTap(ops, tapState{Index: 7, Name: "tap0", UID: 1000})
	ops.sysctl[netsetup.IPForwardPath] = "1"
	ops.live[8] = true
	s.addTap(ops, tapState{Index: 8, Name: "tap1", UID: 1000})
	s.tap(7).Addrs = []guestAddr{{Addr: netip.MustParseAddr("192.168.1.50"), Pub: []pubEntry{{Dev: "eth0", Index: 2}}}}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	s.close()
	s.close() // idempotent
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, %v; want 0700", st.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || strings.Contains(ents[0].Name(), "tmp") {
		t.Errorf("state dir holds %v; want one state file", ents)
	}

	// Reopen: the record survived; one tap gone -> its proxy ARP entry
	// goes, ip_forward stays.
	s, err = openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.st.IPForward != "0" || len(s.st.Taps) != 2 {
		t.Fatalf("reloaded state = %+v", s.st)
	}
	ops.live[7] = false
	if !s.gc(ops) {
		t.Error("gc after a tap went = false")
	}
	if got := strings.Join(ops.unpublished, ","); got != "192.168.1.50@eth0" {
		t.Errorf("unpublished %q; want 192.168.1.50@eth0", got)
	}
	if ops.sysctl[netsetup.IPForwardPath] != "1" || len(s.st.Taps) != 1 {
		t.Errorf("after the first tap went: ip_forward %s, taps %+v", ops.sysctl[netsetup.IPForwardPath], s.st.Taps)
	}
	// The last tap goes: ip_forward back to 0, the file removed.
	ops.live[8] = false
	s.gc(ops)
	if ops.sysctl[netsetup.IPForwardPath] != "0" {
		t.Errorf("ip_forward after the last tap = %s; want 0", ops.sysctl[netsetup.IPForwardPath])
	}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	s.close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("state dir holds %v after the last tap; want nothing", ents)
	}
}

// TestRestoreKeepsAdminChange: if someone set ip_forward while the taps
// lived, the value they set stands.
func TestRestoreKeepsAdminChange(t *testing.T) {
	for _, tt := range []struct{ prior, now, want string }{
		{"0", "1", "0"}, {"1", "1", "1"}, {"0", "0", "0"}, {"0", "2", "2"},
	} {
		ops := &fakeOps{sysctl: map[string]string{"x": tt.now}}
		restoreSysctl(ops, "x", tt.prior)
		if got := ops.sysctl["x"]; got != tt.want {
			t.Errorf("restore prior %s over %s = %s; want %s", tt.prior, tt.now, got, tt.want)
		}
	}
}

func TestOpenStoreRefusesLooseDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if s, err := openStore(dir); err == nil {
		s.close()
		t.Error("openStore accepted a world-writable directory")
	}
}
