package cgroup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/coreos/go-systemd/v22/unit"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// A transient scope, as podman and runc get one for a rootless container:
// the user's own systemd manager (systemd --user) makes a scope unit with
// Delegate=yes, moves the given process into its cgroup and leaves the
// subtree to it. The manager is asked over D-Bus, on the session bus
// ($DBUS_SESSION_BUS_ADDRESS, its unix:path= addresses; then
// $XDG_RUNTIME_DIR/bus), else peer to peer on the manager's private socket
// ($XDG_RUNTIME_DIR/systemd/private). Nothing in the environment is
// trusted: a socket is used only when it is a socket owned by the user
// and the process answering on it runs as the user (SO_PEERCRED), so a
// planted XDG_RUNTIME_DIR cannot lead to another user's manager.

// BusAddr is one place the user's manager may answer.
type BusAddr struct {
	Path string // a unix socket
	P2P  bool   // the manager's private socket: no bus daemon, no Hello
}

// BusAddrs lists where the manager of the user uid may answer, in the
// order they are tried; getenv reads the environment.
func BusAddrs(getenv func(string) string, uid int) []BusAddr {
	var as []BusAddr
	seen := map[string]bool{}
	add := func(p string, p2p bool) {
		if !filepath.IsAbs(p) {
			return
		}
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			as = append(as, BusAddr{Path: p, P2P: p2p})
		}
	}
	for _, p := range ParseBusAddress(getenv("DBUS_SESSION_BUS_ADDRESS")) {
		add(p, false)
	}
	rt := getenv("XDG_RUNTIME_DIR")
	if !filepath.IsAbs(rt) {
		rt = fmt.Sprintf("/run/user/%d", uid)
	}
	add(filepath.Join(rt, "bus"), false)
	add(filepath.Join(rt, "systemd", "private"), true)
	return as
}

// ParseBusAddress returns the socket paths of the unix:path= entries of a
// D-Bus server address list ("unix:path=/run/user/1000/bus;tcp:..."),
// with the %XX escapes of its values decoded. Other transports and keys
// (abstract sockets, tcp) are left out.
func ParseBusAddress(s string) []string {
	var paths []string
	for _, a := range strings.Split(s, ";") {
		transport, kvs, ok := strings.Cut(a, ":")
		if !ok || transport != "unix" {
			continue
		}
		for _, kv := range strings.Split(kvs, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k != "path" {
				continue
			}
			if p, ok := unescapeBusValue(v); ok && p != "" && !strings.ContainsRune(p, 0) {
				paths = append(paths, p)
			}
		}
	}
	return paths
}

// unescapeBusValue decodes the %XX escapes of a D-Bus address value.
func unescapeBusValue(v string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", false
		}
		n, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// CheckSocket reports (nil) whether path is a unix socket owned by uid.
func CheckSocket(path string, uid int) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s: not a socket", path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != uid {
		return fmt.Errorf("%s: not owned by uid %d", path, uid)
	}
	return nil
}

// dialChecked connects to the socket at path and checks that the process
// on the other end runs as uid.
func dialChecked(ctx context.Context, path string, uid int) (net.Conn, error) {
	if err := CheckSocket(path, uid); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s: not a unix socket connection", path)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		cerr = err
	}
	if cerr != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", path, os.NewSyscallError("getsockopt SO_PEERCRED", cerr))
	}
	if int(cred.Uid) != uid {
		c.Close()
		return nil, fmt.Errorf("%s: answered by uid %d, not %d", path, cred.Uid, uid)
	}
	return c, nil
}

// dialBus returns a D-Bus connection to the manager at a, authenticated as
// uid (EXTERNAL), registered on the bus unless a is peer to peer.
func dialBus(ctx context.Context, a BusAddr, uid int) (*dbus.Conn, error) {
	c, err := dialChecked(ctx, a.Path, uid)
	if err != nil {
		return nil, err
	}
	conn, err := dbus.NewConn(c, dbus.WithContext(ctx))
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(uid))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: D-Bus authentication: %w", a.Path, err)
	}
	if !a.P2P {
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: D-Bus Hello: %w", a.Path, err)
		}
	}
	return conn, nil
}

// ScopeUnit is the unit name of machine umid's scope (pid: linux's).
func ScopeUnit(umid string, pid int) string {
	name := fmt.Sprintf("uml-%s-%d.scope", unit.UnitNameEscape(umid), pid)
	if len(name) > 255 { // systemd's limit for a unit name
		name = fmt.Sprintf("uml-%d.scope", pid)
	}
	return name
}

// ErrNoManager wraps the reasons no manager could be asked.
var ErrNoManager = errors.New("no systemd user manager answered")

// StartScope asks the systemd manager of the user this process runs as
// for the transient scope unit name with Delegate=yes, holding pid, and
// waits until the manager says the job is done. It returns the socket it
// used. ctx bounds the whole exchange.
func StartScope(ctx context.Context, name, description string, pid int, getenv func(string) string) (string, error) {
	uid := os.Getuid()
	var whys []string
	for _, a := range BusAddrs(getenv, uid) {
		if _, err := os.Lstat(a.Path); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			whys = append(whys, a.Path+": "+err.Error())
			continue
		}
		err := startScope(ctx, a, uid, name, description, pid)
		if err == nil {
			return a.Path, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("systemd user manager at %s: no answer: %w", a.Path, ctx.Err())
		}
		var job *jobError
		if errors.As(err, &job) {
			// The manager answered and refused: asking it elsewhere
			// would not change its answer.
			return "", fmt.Errorf("systemd user manager at %s: %w", a.Path, err)
		}
		whys = append(whys, err.Error())
	}
	return "", fmt.Errorf("%w (%s)", ErrNoManager, strings.Join(whys, "; "))
}

// jobError is a manager's refusal: the call failed or the job did not end
// "done".
type jobError struct{ err error }

func (e *jobError) Error() string { return e.err.Error() }
func (e *jobError) Unwrap() error { return e.err }

func startScope(ctx context.Context, a BusAddr, uid int, name, description string, pid int) error {
	conn, err := sddbus.NewConnection(func() (*dbus.Conn, error) { return dialBus(ctx, a, uid) })
	if err != nil {
		return err
	}
	defer conn.Close()
	props := []sddbus.Property{
		sddbus.PropDescription(description),
		sddbus.PropPids(uint32(pid)),
		{Name: "Delegate", Value: dbus.MakeVariant(true)},
		// Gone once empty, even when it failed: nothing is left for a
		// `linux` killed with SIGKILL.
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, name, "fail", props, done); err != nil {
		var de dbus.Error
		var dp *dbus.Error
		if errors.As(err, &de) || errors.As(err, &dp) {
			return &jobError{fmt.Errorf("start %s: %w", name, err)}
		}
		return err
	}
	select {
	case r := <-done:
		if r != "done" {
			return &jobError{fmt.Errorf("start %s: job %s", name, r)}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("start %s: no answer: %w", name, ctx.Err())
	}
}
