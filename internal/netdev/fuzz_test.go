//go:build linux

package netdev

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzSpecs: every transport's Parse never panics, and what it accepts
// renders (Spec.Fields) to fields that parse to the same Spec.
func FuzzSpecs(f *testing.F) {
	for _, s := range []string{
		"daemon,fe:fd:00:00:00:01,unix,/tmp/uml.ctl", "daemon", "daemon,,,/tmp/x,/tmp/data,more",
		"tuntap,tap0", "tuntap,,fe:fd:00:00:00:02,10.0.0.1", "tuntap,a,b,c,d",
		"mcast", "mcast,,239.192.168.1,1102,1", "mcast,,x,70000", "ucast,,10.0.0.2,1102,1103",
		"vde,/tmp/vde.ctl,,3,users,770,my plug", "vde,,,,,9", "slirp", "slirp,,slirp,-P_2222:22", "ethertap,tap0",
		"vec:transport=raw,ifname=veth0,depth=128,gro=1", "vec:transport=gre,src=10.0.0.1,dst=10.0.0.2,rx_key=1,tx_key=2,sequence=1",
		"vec:transport=l2tpv3,udp=1,dst=10.0.0.2,dstport=1701,rx_session=1,tx_session=2,cookie64=1,rx_cookie=3,tx_cookie=4",
		"vec:transport=fd,fd=3", "vec:transport=bess,dst=/tmp/s", "vec:transport=tap", "vec:transport=hybrid,ifname=tap0,gro=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		name, fields := SplitSpec(spec)
		d := Lookup(name)
		if v, ok := strings.CutPrefix(spec, "vec:"); ok { // a vector spec
			a, err := ParseVecArgs(v)
			if err != nil {
				return
			}
			name, d, fields = a["transport"], LookupVector(a["transport"]), strings.Split(v, ",")
		}
		if d == nil || d.Parse == nil || d.Open == nil {
			return
		}
		s, err := d.Parse(fields)
		if err != nil {
			return
		}
		again, err := d.Parse(s.Fields())
		if err != nil {
			t.Fatalf("%s: Parse(Fields(%#v)) = %v", name, s, err)
		}
		if sl, ok := s.(slirpSpec); ok { // Fields cannot say the argv was cut
			sl.Cut = false
			s = sl
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("%s: round trip changed the spec: %#v -> %#v", name, s, again)
		}
	})
}

func TestRegistry(t *testing.T) {
	for _, name := range []string{"daemon", "tuntap", "mcast", "ucast", "vde", "slirp"} {
		d := Lookup(name)
		if d == nil || d.Parse == nil || d.Open == nil || d.Wrap == nil || d.Help == "" {
			t.Errorf("transport %s is not complete: %+v", name, d)
		}
	}
	for _, name := range []string{"ethertap", "slip", "pcap", "vector"} {
		if d := Lookup(name); d == nil || d.Open != nil {
			t.Errorf("transport %s: want a known name this build does not make", name)
		}
	}
	if got, want := SupportedText(), "daemon, mcast, slirp, tuntap, ucast and vde"; got != want {
		t.Errorf("SupportedText() = %q; want %q", got, want)
	}
	h, _ := testHost()
	if o, err := Open(h, 0, "frobnicate,1,2"); o != nil || err != nil {
		t.Errorf("Open(unknown transport) = %v, %v; want nil, nil (UML ignores it)", o, err)
	}
}
