package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/helperproto"
	"github.com/umlkit/umlkit/internal/netdev"
	"github.com/umlkit/umlkit/internal/sys"
)

// The uml_net helper path of ethN=tuntap,,MAC,GATE (net.md §3, §4): P runs
// `uml_net 4 tuntap up GATE`, receives the host tap's fd, and later runs the
// `add`/`del` address hooks when the guest changes ethN's IPv4 addresses.

// logText prints a helper's output text into the boot log, line by line.
func (m *machine) logText(text string) {
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		m.logf("%s", l)
	}
}

// tuntapUp runs `uml_net 4 tuntap up gate` and returns the tap it made.
func (m *machine) tuntapUp(gate string) (*os.File, string, error) {
	argv := helperproto.TuntapUpArgv(gate)
	path, err := netdev.LookHelper(argv[0])
	if err != nil {
		return nil, "", err
	}
	ours, theirs, err := sys.FilePair(unix.SOCK_DGRAM, "uml_net reply", "uml_net stdout")
	if err != nil {
		return nil, "", err
	}
	defer ours.Close()
	fc, err := net.FileConn(ours)
	if err != nil {
		theirs.Close()
		return nil, "", err
	}
	conn := fc.(*net.UnixConn)
	defer conn.Close()
	cmd := &exec.Cmd{Path: path, Args: argv, Stdout: theirs, Stderr: m.stdio.Err}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return nil, "", fmt.Errorf("run_helper : failed to exec %s on host: %v", argv[0], errors.Unwrap(err))
	}
	defer cmd.Wait()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	data, files, _, err := fdpass.Recv(conn, 4096, 1)
	if errors.Is(err, fdpass.ErrNoFD) {
		m.logText(helperproto.FailedTuntapText(data))
		return nil, "", errors.New("tuntap_open_tramp : didn't receive a descriptor")
	}
	if err != nil {
		return nil, "", errors.New("tuntap_open_tramp : didn't receive a message")
	}
	var r helperproto.TuntapReply
	if err := r.UnmarshalBinary(data); err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, "", fmt.Errorf("tuntap_open_tramp : %v", err)
	}
	m.logText(r.Text)
	return files[0], r.Name, nil
}

// changeAddr runs the `uml_net 4 add|del DEV ADDR MASK` hook and logs its
// output.
//
// The address policy (no host, gateway, LAN network/broadcast, in-use LAN or
// remote address; proxy ARP only for addresses routed to the machine's own
// tap) is not checked here: uml_net enforces it for every caller, root
// included, so K relies on its refusal and prints the refusal line like any
// other helper output, as UML prints the helper's text (docs/uml_net.md,
// "Policy"). A pre-check here would be a second copy of the rules that
// could only disagree with the helper's.
func (m *machine) changeAddr(op, dev, addr, mask string) {
	argv := helperproto.ChangeAddrArgv(op, dev, addr, mask)
	path, err := netdev.LookHelper(argv[0])
	if err != nil {
		m.logf("%v", err)
		return
	}
	ours, theirs, err := sys.FilePair(unix.SOCK_STREAM, "uml_net output", "uml_net stdout")
	if err != nil {
		m.logf("change_addr: %v", err)
		return
	}
	defer ours.Close()
	cmd := &exec.Cmd{Path: path, Args: argv, Stdout: theirs, Stderr: m.stdio.Err}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		m.logf("run_helper : failed to exec %s on host: %v", argv[0], errors.Unwrap(err))
		return
	}
	ours.SetReadDeadline(time.Now().Add(30 * time.Second))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		n, err := ours.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			break
		}
	}
	cmd.Wait()
	if text, _, err := helperproto.ParseLengthPrefixed(buf); err == nil {
		m.logText(text)
	}
}

// addrHook is an eth device whose host tap came from uml_net.
type addrHook struct {
	unit int
	tap  string
}

// watchAddrs follows the IPv4 addresses of the hooked ethN devices in K's
// network namespace (K's pid kpid) and runs the uml_net hooks; the returned
// function stops it.
func (m *machine) watchAddrs(kpid int, hooks []addrHook) func() {
	if len(hooks) == 0 {
		return func() {}
	}
	ns, err := netns.GetFromPid(kpid)
	if err != nil {
		m.logf("uml_net address hooks disabled: %v", err)
		return func() {}
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		m.logf("uml_net address hooks disabled: %v", err)
		return func() {}
	}
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		h.Close()
		ns.Close()
		m.logf("uml_net address hooks disabled: %v", err)
		return func() {}
	}
	byName := map[string]string{}
	for _, k := range hooks {
		byName[fmt.Sprintf("eth%d", k.unit)] = k.tap
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for u := range ch {
			ip4 := u.LinkAddress.IP.To4()
			if ip4 == nil {
				continue
			}
			link, err := h.LinkByIndex(u.LinkIndex)
			if err != nil {
				continue
			}
			tap, ok := byName[link.Attrs().Name]
			if !ok {
				continue
			}
			op := "del"
			if u.NewAddr {
				op = "add"
			}
			m.changeAddr(op, tap, ip4.String(), net.IP(u.LinkAddress.Mask).String())
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		h.Close()
		ns.Close()
	}
}
