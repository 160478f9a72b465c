//go:build linux

package netdev

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseVecArgs(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want map[string]string
		err  string
	}{
		{"transport=tap,ifname=t0", map[string]string{"transport": "tap", "ifname": "t0"}, ""},
		{"abc,transport=tap", map[string]string{"transport": "tap"}, ""}, // linux.uml ignores an option without '='
		{"", map[string]string{}, ""},
		{"transport=tap,a=b=c", nil, "vector_setup - Couldn't parse 'transport'"},
		{"a=b=c,transport=tap", nil, "vector_setup - Couldn't parse 'a'"},
		{strings.Repeat("a=1,", 20) + "b=2", nil, "too many options"},
	} {
		got, err := ParseVecArgs(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseVecArgs(%q) = %v; want error %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseVecArgs(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
		}
	}
}

func TestVectorSpecErrors(t *testing.T) {
	for _, tt := range []struct{ spec, err string }{
		{"transport=raw", "transport=raw needs ifname="},
		{"transport=hybrid,mac=02:00:00:00:00:01", "transport=hybrid needs ifname="},
		{"transport=gre,src=10.0.0.1", "transport=gre needs dst="},
		{"transport=gre,dst=10.0.0.1,rx_key=1", "give both rx_key= and tx_key="},
		{"transport=gre,dst=fe80::1", "IPv6 addresses need v6=1"},
		{"transport=gre,dst=10.0.0.1,v6=1", "v6=1 needs IPv6 addresses"},
		{"transport=gre,dst=host.example", "is not an address"},
		{"transport=l2tpv3,dst=10.0.0.1", "needs rx_session= and tx_session="},
		{"transport=l2tpv3,dst=10.0.0.1,rx_session=1,tx_session=2,rx_cookie=1", "give both rx_cookie= and tx_cookie="},
		{"transport=l2tpv3,dst=10.0.0.1,rx_session=1,tx_session=2,rx_cookie=0x100000000,tx_cookie=1", "bad rx_cookie value"},
		{"transport=l2tpv3,udp=1,dst=10.0.0.1,rx_session=1,tx_session=2", "udp=1 needs dstport="},
		{"transport=bess", "transport=bess needs dst="},
		{"transport=bess,dst=" + strings.Repeat("x", 108), "at most 107 characters"},
		{"transport=fd", "transport=fd needs fd="},
		{"transport=fd,fd=x", "bad fd value"},
	} {
		a, _ := ParseVecArgs(tt.spec)
		d := LookupVector(a["transport"])
		if d == nil {
			t.Fatalf("%s: no transport", tt.spec)
		}
		_, err := d.Parse(strings.Split(tt.spec, ","))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Parse(%q) = %v; want %q", tt.spec, err, tt.err)
		}
	}
}

func TestVecCommon(t *testing.T) {
	c := parseVecCommon(vecArgs{"mtu": "9000", "depth": "128", "gro": "1", "vec": "0", "mac": "02:00:00:00:00:01"})
	if c.MTU != 9000 || c.Depth != 128 || !c.GRO || c.Vec || c.MAC != "02:00:00:00:00:01" {
		t.Errorf("parseVecCommon = %+v", c)
	}
	for _, mtu := range []string{"575", "65535", "x"} {
		if c := parseVecCommon(vecArgs{"mtu": mtu}); c.MTU != MTU {
			t.Errorf("mtu=%s gives %d; want the default %d", mtu, c.MTU, MTU)
		}
	}
	if d := LookupVector("tapfoo"); d == nil || d.Name != "tap" {
		t.Errorf("transport=tapfoo = %v; want tap (UML matches prefixes)", d)
	}
	if d := LookupVector("zzz"); d != nil {
		t.Errorf("transport=zzz = %v; want none", d)
	}
	h, out := testHost()
	if _, err := OpenVector(h, 2, "transport=zzz"); err == nil || !strings.Contains(err.Error(), "vec2: unknown transport 'zzz'") {
		t.Errorf("OpenVector(zzz) = %v", err)
	}
	if !strings.Contains(out.String(), "Choosing a random ethernet address for device vec2") {
		t.Errorf("no MAC line before the transport failed (UML chooses the MAC first): %q", out.String())
	}
}

// TestVectorRegistry: every vector transport UML 6.1 has is made by this
// build, complete (a kernel half: Wrap, or WrapRx for hybrid's two
// descriptors) and in --help.
func TestVectorRegistry(t *testing.T) {
	want := []string{"bess", "fd", "gre", "hybrid", "l2tpv3", "raw", "tap"}
	if got := VectorNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("VectorNames() = %v; want %v", got, want)
	}
	for _, name := range want {
		d := LookupVector(name)
		if d == nil || d.Parse == nil || d.Open == nil || (d.Wrap == nil) == (d.WrapRx == nil) || d.Help == "" {
			t.Errorf("vector transport %s is not complete: %+v", name, d)
			continue
		}
		if !strings.Contains(VectorHelp(), "vecN:transport="+name) {
			t.Errorf("VectorHelp() lacks transport=%s:\n%s", name, VectorHelp())
		}
	}
	if d := LookupVector("hybrid"); d == nil || d.WrapRx == nil {
		t.Errorf("hybrid has no WrapRx (it sends through the tap and receives through a packet socket)")
	}
	sp, err := parseVecHybrid([]string{"transport=hybrid", "ifname=ht0", "gro=1", "mtu=9000"})
	if s, _ := sp.(vecHybridSpec); err != nil || s.Ifname != "ht0" || !s.common.GRO || s.common.MTU != 9000 {
		t.Errorf("parseVecHybrid = %+v, %v; want ifname ht0, gro, mtu 9000", sp, err)
	}
}
