//go:build linux

package netsetup

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/internal/tuntap"
)

// inNewNetNS runs f on a locked thread moved into a fresh network
// namespace (the thread is discarded afterwards).
func inNewNetNS(t *testing.T, f func()) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTUN(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare(CLONE_NEWNET): %v", err)
			return
		}
		f()
	}()
	<-done
}

func readSysctl(t *testing.T, rel string) string {
	b, err := os.ReadFile(ProcSys + "/" + rel)
	if err != nil {
		t.Errorf("read %s: %v", rel, err)
	}
	return strings.TrimSpace(string(b))
}

func TestIntegrationHostSetup(t *testing.T) {
	inNewNetNS(t, func() {
		tap, err := tuntap.Open(tuntap.Config{Name: "tap0"})
		if err != nil {
			t.Error(err)
			return
		}
		defer tap.Close()
		up, err := tuntap.Open(tuntap.Config{Name: "uplink"})
		if err != nil {
			t.Error(err)
			return
		}
		defer up.Close()
		a := netip.MustParseAddr
		if err := AddrUp("uplink", a("10.5.0.1"), 16, 0); err != nil {
			t.Error(err)
		}
		if err := SetAlias("tap0", "uml_net uid=7"); err != nil {
			t.Error(err)
		}
		if got, err := Alias("tap0"); got != "uml_net uid=7" || err != nil {
			t.Errorf("Alias = %q, %v", got, err)
		}
		if ok, err := IsTunTap("tap0"); !ok || err != nil {
			t.Errorf("IsTunTap(tap0) = %v, %v", ok, err)
		}
		if _, err := Alias("nosuch0"); !errors.Is(err, unix.ENODEV) {
			t.Errorf("Alias(nosuch0) = %v; want ENODEV", err)
		}
		if err := AddrUp("tap0", a("10.5.9.1"), 32, 1400); err != nil {
			t.Error(err)
		}
		if err := AddrUp("tap0", a("10.5.9.1"), 32, 0); err != nil {
			t.Errorf("AddrUp twice: %v", err)
		}
		l, _ := netlink.LinkByName("tap0")
		if l.Attrs().MTU != 1400 || l.Attrs().Flags&(1<<0) == 0 {
			t.Errorf("tap0 mtu %d flags %v; want 1400, up", l.Attrs().MTU, l.Attrs().Flags)
		}
		if local, _ := IsLocalAddr(a("10.5.9.1")); !local {
			t.Error("IsLocalAddr(10.5.9.1) = false")
		}
		if local, _ := IsLocalAddr(a("10.5.9.2")); local {
			t.Error("IsLocalAddr(10.5.9.2) = true")
		}
		if err := AddHostRoute("tap0", a("10.5.9.2")); err != nil {
			t.Error(err)
		}
		if err := AddHostRoute("tap0", a("10.5.9.2")); !errors.Is(err, unix.EEXIST) || !strings.HasPrefix(err.Error(), "SIOCADDRT: ") {
			t.Errorf("second AddHostRoute = %v; want SIOCADDRT: EEXIST", err)
		}
		h := Host{}
		if err := h.SetIPForward(true); err != nil {
			t.Error(err)
		}
		if got := readSysctl(t, IPForwardPath); got != "1" {
			t.Errorf("ip_forward = %q", got)
		}
		if err := h.SetProxyARP("tap0", true); err != nil {
			t.Error(err)
		}
		if got := readSysctl(t, ProxyARPPath("tap0")); got != "1" {
			t.Errorf("proxy_arp = %q", got)
		}
		if err := h.SetProxyARP("../../kernel", true); err == nil {
			t.Error("SetProxyARP(../../kernel) accepted")
		}
		ifs, err := MatchingRoutes(a("10.5.9.2"), a("255.255.0.0"), "tap0")
		if err != nil || len(ifs) != 1 || ifs[0] != "uplink" {
			t.Errorf("MatchingRoutes = %q, %v; want [uplink]", ifs, err)
		}
		if ifs, _ := MatchingRoutes(a("10.6.0.2"), a("255.255.0.0"), "tap0"); len(ifs) != 0 {
			t.Errorf("MatchingRoutes(10.6.0.2) = %q; want none", ifs)
		}
		if err := PublishARP("uplink", a("10.5.9.2")); err != nil {
			t.Error(err)
		}
		ul, _ := netlink.LinkByName("uplink")
		pn, _ := netlink.NeighProxyList(ul.Attrs().Index, unix.AF_INET)
		if len(pn) != 1 || !pn[0].IP.Equal(a("10.5.9.2").AsSlice()) {
			t.Errorf("proxy neighbours on uplink = %v", pn)
		}
		if err := UnpublishARP("uplink", a("10.5.9.2")); err != nil {
			t.Error(err)
		}
		if pn, _ := netlink.NeighProxyList(ul.Attrs().Index, unix.AF_INET); len(pn) != 0 {
			t.Errorf("proxy neighbours after unpublish = %v", pn)
		}
		if err := DelHostRoute("tap0", a("10.5.9.2")); err != nil {
			t.Error(err)
		}
		if err := FlushDown("tap0"); err != nil {
			t.Error(err)
		}
		if addrs, _ := netlink.AddrList(l, unix.AF_INET); len(addrs) != 0 {
			t.Errorf("addresses after FlushDown = %v", addrs)
		}
	})
}
