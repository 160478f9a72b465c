//go:build linux

package netdev

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// UML's vector devices, vecN:transport=NAME,key=value,... (net.md §6): a
// device named vecN in the guest over one of the vector transports (tap,
// raw, hybrid, fd, bess, gre, l2tpv3, each in a vec_*.go file of its
// own). The options every transport takes are parsed here; each
// transport reads its own from the same key=value list.

// maxVecArgs is UML's limit on a vector spec's key=value pairs.
const maxVecArgs = 20

// Vector MTU bounds and defaults (net.md §6).
const (
	minVecMTU = 576
	maxVecMTU = 65534
)

var vectors = map[string]*Driver{}

// vectorOrder is the order in which a transport= value is matched
// against the names (UML compares prefixes).
var vectorOrder = []string{"raw", "tap", "gre", "l2tpv3", "hybrid", "bess", "fd"}

// RegisterVector adds a vector transport; it is meant for init functions.
func RegisterVector(d *Driver) {
	if _, dup := vectors[d.Name]; dup {
		panic("netdev: vector transport registered twice: " + d.Name)
	}
	vectors[d.Name] = d
}

// LookupVector returns the vector transport a transport= value names (by
// UML's prefix match), or nil.
func LookupVector(value string) *Driver {
	for _, n := range vectorOrder {
		if strings.HasPrefix(value, n) {
			return vectors[n]
		}
	}
	return nil
}

// VectorNames lists the vector transports this build makes, sorted.
func VectorNames() []string {
	var names []string
	for n, d := range vectors {
		if d.Open != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// VectorHelp is the --help text of the vector transports.
func VectorHelp() string {
	var b strings.Builder
	for _, n := range VectorNames() {
		b.WriteString(vectors[n].Help)
		b.WriteString("\n")
	}
	return b.String()
}

// vecArgs is a parsed vector spec: its key=value pairs.
type vecArgs map[string]string

// ParseVecArgs splits a vector spec (the text after "vecN:") into its
// key=value pairs the way UML's parser does (verified with linux.uml 6.1):
// pairs at ',', key and value at the first '='; an option without '=' is
// ignored; a value with a second '=' makes the whole spec unparsable, and
// the error is UML's message, naming the spec up to its first '='.
func ParseVecArgs(spec string) (map[string]string, error) {
	args := map[string]string{}
	tokens := strings.Split(spec, ",")
	if len(tokens) > maxVecArgs {
		return nil, fmt.Errorf("vector_setup - Couldn't parse '%s' : too many options (at most %d)", spec, maxVecArgs)
	}
	for _, t := range tokens {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		if strings.Contains(v, "=") {
			name, _, _ := strings.Cut(spec, "=")
			return nil, fmt.Errorf("vector_setup - Couldn't parse '%s'", name)
		}
		args[k] = v
	}
	return args, nil
}

// fields renders args back as sorted key=value pairs (Spec.Fields).
func (a vecArgs) fields() []string {
	f := make([]string, 0, len(a))
	for k, v := range a {
		f = append(f, k+"="+v)
	}
	sort.Strings(f)
	return f
}

// num returns the unsigned value of key (base prefixes as C's strtoul),
// def when absent.
func (a vecArgs) num(key string, bits int, def uint64) (uint64, error) {
	v, ok := a[key]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("bad %s value '%s'", key, v)
	}
	return n, nil
}

// flag reports whether key is set to a non-zero number.
func (a vecArgs) flag(key string) bool {
	n, err := a.num(key, 64, 0)
	return err == nil && n > 0
}

// vecCommon are the options every vector transport takes.
type vecCommon struct {
	MAC      string
	MTU      int
	Depth    int
	Headroom int
	GRO      bool
	Vec      bool // multi-packet I/O
	Ifup     string
}

func parseVecCommon(a vecArgs) vecCommon {
	c := vecCommon{MAC: a["mac"], MTU: MTU, Depth: 64, Headroom: 2, Vec: true, Ifup: a["ifup"]}
	if n, err := a.num("mtu", 32, MTU); err == nil && n >= minVecMTU && n <= maxVecMTU {
		c.MTU = int(n)
	}
	if n, err := a.num("depth", 16, 64); err == nil && n > 0 {
		c.Depth = int(n)
	}
	if n, err := a.num("headroom", 16, 2); err == nil {
		c.Headroom = int(n)
	}
	c.GRO = a.flag("gro")
	if v, ok := a["vec"]; ok && v == "0" {
		c.Vec = false
	}
	return c
}

// vecSpec is a vector transport's parsed spec: the pairs (for Fields) and
// the common options; each transport keeps its own fields beside it.
type vecSpec struct {
	args   vecArgs
	common vecCommon
}

func (s vecSpec) Fields() []string { return s.args.fields() }

// newVecSpec parses the common options of the pairs fields.
func newVecSpec(fields []string) (vecSpec, error) {
	a, err := ParseVecArgs(strings.Join(fields, ","))
	if err != nil {
		return vecSpec{}, err
	}
	return vecSpec{args: a, common: parseVecCommon(a)}, nil
}

// OpenVector is P's setup of vecN:spec. As UML does, it chooses the
// device's MAC first (with UML's messages), then opens the transport its
// transport= names; UML reports a transport's failure only when the guest
// brings the device up, ours says at boot what is wrong.
func OpenVector(h *Host, unit int, spec string) (*Opened, error) {
	a, err := ParseVecArgs(spec)
	if err != nil {
		return nil, err
	}
	mac := SetupMAC(h.logf, plan.DevName(true, unit), a["mac"])
	t, ok := a["transport"]
	if !ok {
		return nil, fmt.Errorf("vec%d: no transport= given (one of %s)", unit, strings.Join(VectorNames(), ", "))
	}
	d := LookupVector(t)
	switch {
	case d == nil:
		return nil, fmt.Errorf("vec%d: unknown transport '%s' (this build has %s)", unit, t, strings.Join(VectorNames(), ", "))
	case d.Open == nil:
		return nil, fmt.Errorf("vec%d: transport=%s is not supported by this build (%s are)", unit, d.Name, strings.Join(VectorNames(), ", "))
	}
	s, err := d.Parse(strings.Split(spec, ","))
	if err != nil {
		return nil, fmt.Errorf("vec%d: %v", unit, err)
	}
	hm := *h
	hm.vecMAC = &mac
	return d.Open(&hm, unit, s)
}

// openedVec is the Opened of vector device unit over f, with the common
// options in the plan: the MAC OpenVector chose and the MTU.
func openedVec(h *Host, unit int, transport string, c vecCommon, f *os.File, params any) (*Opened, error) {
	var mac ether.MAC
	if h.vecMAC != nil {
		mac = *h.vecMAC
	} else {
		mac = SetupMAC(h.logf, plan.DevName(true, unit), c.MAC)
	}
	o, err := newOpened(unit, transport, mac, f, params)
	if err != nil {
		return nil, err
	}
	o.Eth.Vector = true
	switch transport {
	case "tap", "raw", "hybrid": // their host sides carry vnet headers
		o.Eth.Vnet = true
		o.Eth.Offload = c.GRO // large segments from the guest: the peer takes them (UML's gro=1)
	}
	if c.MTU != MTU {
		o.Eth.MTU = c.MTU
	}
	return o, nil
}

// DriverOf returns the transport of device e (an eth or a vector device),
// or nil.
func DriverOf(e plan.Eth) *Driver {
	if e.Vector {
		return vectors[e.Transport]
	}
	return drivers[e.Transport]
}
