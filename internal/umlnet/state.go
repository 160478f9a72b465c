//go:build linux

package umlnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/netsetup"
)

// StateDir holds what uml_net changed on the host, one file per network
// namespace (net-<SO_NETNS_COOKIE>.json): the value ip_forward had before
// the first tap, the taps it made, each tap's prior proxy_arp and the proxy
// ARP entries published for the addresses routed to it. Files are replaced
// atomically (temporary file, fsync, rename, fsync of the directory); the
// directory is root's, mode 0700, and every change happens under an
// exclusive flock of it.
const StateDir = "/run/uml_net"

// hostState is one network namespace's record.
type hostState struct {
	// IPForward is net.ipv4.ip_forward before the first tap ("" when no
	// tap is recorded).
	IPForward string     `json:"ip_forward,omitempty"`
	Taps      []tapState `json:"taps,omitempty"`
}

// tapState is one tap (or SLIP interface) uml_net made.
type tapState struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	UID   int    `json:"uid"`
	// ProxyARP is the tap's proxy_arp before the first guest address
	// ("" when none is routed to it).
	ProxyARP string `json:"proxy_arp,omitempty"`
	// Addrs are the guest addresses routed to the tap, with the proxy ARP
	// entries published for each.
	Addrs []guestAddr `json:"addrs,omitempty"`
}

type guestAddr struct {
	Addr netip.Addr `json:"addr"`
	Pub  []pubEntry `json:"pub,omitempty"`
}

type pubEntry struct {
	Dev   string `json:"dev"`
	Index int    `json:"index"`
}

func (t *tapState) addr(a netip.Addr) *guestAddr {
	for i := range t.Addrs {
		if t.Addrs[i].Addr == a {
			return &t.Addrs[i]
		}
	}
	return nil
}

// store is the locked state of the calling thread's network namespace.
type store struct {
	dir  *os.File // flocked while the store is open
	path string
	st   hostState
}

// openStore creates dir if needed (root-only), locks it and reads the
// state of the current network namespace.
func openStore(dir string) (*store, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("stat state directory: %w", err)
	}
	if st.Uid != uint32(os.Geteuid()) || st.Mode&0o077 != 0 {
		d.Close()
		return nil, fmt.Errorf("state directory %s: not owned by uid %d or open to others", dir, os.Geteuid())
	}
	// Made by a setuid run, it got the caller's group: give it to root.
	if st.Uid == 0 && st.Gid != 0 {
		unix.Fchown(int(d.Fd()), 0, 0)
	}
	if err := flock(d, unix.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	cookie, err := netsetup.NetnsCookie()
	if err != nil {
		d.Close()
		return nil, err
	}
	s := &store{dir: d, path: filepath.Join(dir, "net-"+strconv.FormatUint(cookie, 10)+".json")}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		d.Close()
		return nil, fmt.Errorf("read state: %w", err)
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			d.Close()
			return nil, fmt.Errorf("read state %s: %w", s.path, err)
		}
	}
	return s, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// close releases the lock; it may be called more than once.
func (s *store) close() {
	if s.dir != nil {
		s.dir.Close()
		s.dir = nil
	}
}

// watchPath is the file a watcher holds locked while it runs.
func (s *store) watchPath() string { return s.path[:len(s.path)-len(".json")] + ".watch" }

// save writes the state atomically, or removes the file when nothing is
// recorded.
func (s *store) save() error {
	if len(s.st.Taps) == 0 && s.st.IPForward == "" {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove state: %w", err)
		}
		return s.dir.Sync()
	}
	b, err := json.Marshal(s.st)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	os.Remove(tmp) // a leftover of a crash; we hold the lock
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if os.Geteuid() == 0 {
		f.Chown(0, 0)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	return s.dir.Sync()
}

func (s *store) tap(index int) *tapState {
	for i := range s.st.Taps {
		if s.st.Taps[i].Index == index {
			return &s.st.Taps[i]
		}
	}
	return nil
}

// hostOps are the host effects of the bookkeeping (netlink and sysctls), an
// interface so the rules are tested without a network namespace.
type hostOps interface {
	// alive reports whether the interface index is still the tap named
	// name made for uid.
	alive(t tapState) bool
	unpublish(dev string, index int, a netip.Addr)
	readSysctl(rel string) (string, error)
	writeSysctl(rel, v string) error
}

// realOps acts on the calling thread's network namespace.
type realOps struct{ host netsetup.Host }

func (realOps) alive(t tapState) bool {
	name, err := netsetup.LinkName(t.Index)
	if err != nil || name != t.Name {
		return false
	}
	alias, err := netsetup.Alias(name)
	return err == nil && alias == AliasPrefix+strconv.Itoa(t.UID)
}

func (realOps) unpublish(dev string, index int, a netip.Addr) {
	if name, err := netsetup.LinkName(index); err == nil && name == dev {
		netsetup.UnpublishARP(dev, a)
	}
}

func (o realOps) readSysctl(rel string) (string, error) { return o.host.ReadSysctl(rel) }
func (o realOps) writeSysctl(rel, v string) error       { return o.host.WriteSysctl(rel, v) }

// gc forgets the taps that are gone (their proxy ARP entries on the other
// interfaces are removed: the kernel keeps those after the tap), and when no
// tap is left puts ip_forward back to its value before the first tap. It
// reports whether the state changed.
func (s *store) gc(ops hostOps) bool {
	changed := false
	kept := s.st.Taps[:0]
	for _, t := range s.st.Taps {
		if ops.alive(t) {
			kept = append(kept, t)
			continue
		}
		changed = true
		for _, ga := range t.Addrs {
			for _, p := range ga.Pub {
				ops.unpublish(p.Dev, p.Index, ga.Addr)
			}
		}
	}
	s.st.Taps = kept
	if len(s.st.Taps) == 0 && s.st.IPForward != "" {
		restoreSysctl(ops, netsetup.IPForwardPath, s.st.IPForward)
		s.st.IPForward = ""
		changed = true
	}
	return changed
}

// restoreSysctl writes prior back unless someone changed the value since
// uml_net set it to 1 (then theirs stands).
func restoreSysctl(ops hostOps, rel, prior string) {
	if cur, err := ops.readSysctl(rel); err == nil && cur == "1" && prior != "1" {
		ops.writeSysctl(rel, prior)
	}
}

// addTap records a new tap and returns the prior ip_forward to keep (the
// current one when it is the first tap).
func (s *store) addTap(ops hostOps, t tapState) {
	if len(s.st.Taps) == 0 || s.st.IPForward == "" {
		if v, err := ops.readSysctl(netsetup.IPForwardPath); err == nil {
			s.st.IPForward = v
		}
	}
	for i := range s.st.Taps {
		if s.st.Taps[i].Index == t.Index {
			s.st.Taps[i] = t
			return
		}
	}
	s.st.Taps = append(s.st.Taps, t)
}
