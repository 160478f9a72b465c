//go:build linux

package netdev

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// testHost is a Host logging into a buffer as P does (CR LF lines).
func testHost() (*Host, *bytes.Buffer) {
	var out bytes.Buffer
	return &Host{Logf: func(format string, args ...any) { fmt.Fprintf(&out, format+"\r\n", args...) }, Stderr: &out}, &out
}
func TestEthMAC(t *testing.T) {
	for _, c := range []struct {
		in, log string
		want    string // "" = random
	}{
		{"", "Choosing a random ethernet address for device eth0\r\n", ""},
		{"zz", "setup_etheraddr: failed to parse 'zz' as an ethernet address\r\nChoosing a random ethernet address for device eth0\r\n", ""},
		{"01:00:00:00:00:01", "Attempt to assign a multicast ethernet address to a device disallowed\r\nChoosing a random ethernet address for device eth0\r\n", ""},
		{"0:0:0:0:0:0", "Attempt to assign an invalid ethernet address to a device disallowed\r\nChoosing a random ethernet address for device eth0\r\n", ""},
		{"00:11:22:33:44:55", "Warning: Assigning a globally valid ethernet address to a device\r\n" +
			"You should set the 2nd rightmost bit in the first byte of the MAC,\r\ni.e. 02:11:22:33:44:55\r\n", "00:11:22:33:44:55"},
		{"fe:fd:0a:00:00:02", "", "fe:fd:0a:00:00:02"},
	} {
		h, out := testHost()
		mac := SetupMAC(h.Logf, "eth0", c.in)
		if out.String() != c.log {
			t.Errorf("%q: log %q, want %q", c.in, out.String(), c.log)
		}
		if c.want != "" && mac.String() != c.want {
			t.Errorf("%q: mac %s, want %s", c.in, mac, c.want)
		}
		if c.want == "" && (!mac.IsLocal() || mac.IsMulticast()) {
			t.Errorf("%q: random mac %s is not local unicast", c.in, mac)
		}
	}
	if randomMAC() == randomMAC() {
		t.Error("two random MACs are equal")
	}
}

func TestOpenEthErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.ctl")
	for _, c := range []struct{ spec, log, err string }{
		{"tuntap,tap0,,10.0.0.1,x,y", "", "tap_setup_common - Extra garbage on specification : 'x,y'"},
		{"mcast,,239.1.1.1,70000", "", "mcast_setup - Bad port : '70000'"},
		{"mcast,,239.1.1.1,1,x", "", "mcast_setup - Bad ttl : 'x'"},
		{"mcast,,239.1.1.1,1,1,more", "", "mcast_setup - Extra garbage on specification : 'more'"},
		{"daemon,fe:fd:00:00:00:01,unix," + missing + ",/tmp/data", "daemon_setup : Ignoring data socket specification\r\n" +
			"Netdevice 3 (fe:fd:00:00:00:01) : \r\ndaemon backend (uml_switch version 3) - unix:" + missing + "\r\n",
			"daemon_open : control connect failed, errno = 2"},
		{"slip,10.0.0.1", "", "eth_setup - eth3: the slip transport is not supported"},
		{"vde,/tmp/x,,,,9", "", "vde_setup - Bad mode : '9'"},
		{"ucast,,10.0.0.1,x", "", "ucast_setup - Bad listen port : 'x'"},
		{"ucast,,10.0.0.1,1,y", "", "ucast_setup - Bad remote port : 'y'"},
		{"ucast,,10.0.0.1,1,2,z", "", "ucast_setup - Extra garbage on specification : 'z'"},
		{"ucast,fe:fd:00:00:00:01", "Configured ucast device: :1102 -> :1102\r\nNetdevice 3 (fe:fd:00:00:00:01) : \r\n" +
			"ucast backend address: :1102 listen port: 1102\r\n", "eth3: ucast remote address '' is not an IPv4 address"},
		{"pcap,eth0", "", ""},
	} {
		h, out := testHost()
		e, err := Open(h, 3, c.spec)
		if e != nil {
			t.Errorf("%q: got a device", c.spec)
		}
		if (err == nil) != (c.err == "") || err != nil && !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("%q: err %v, want %q", c.spec, err, c.err)
		}
		if c.log != "" && out.String() != c.log {
			t.Errorf("%q: log %q, want %q", c.spec, out.String(), c.log)
		}
	}
}

func TestVdeArgv(t *testing.T) {
	got := strings.Join(vdeArgv(17, "/d/vde.ctl", "", "", 0o700, "UML vde_transport"), "|")
	if want := "vde_plug|--descr|UML vde_transport|--mod2|0700|seqpacket://17|/d/vde.ctl"; got != want {
		t.Errorf("argv %q, want %q", got, want)
	}
	got = strings.Join(vdeArgv(3, "", "5", "users", 0o770, "x"), "|")
	if want := "vde_plug|--descr|x|--port2|5|--group2|users|--mod2|0770|seqpacket://3|"; got != want {
		t.Errorf("argv %q, want %q", got, want)
	}
}
