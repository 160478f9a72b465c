//go:build linux

package netdev

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/ether"
	"github.com/umlkit/umlkit/internal/linux/plan"
)

// An eth transport is one Driver, registered by its file's init: the
// command line, boot, mconsole hot-plug and --help all find transports
// here. Each Driver's file holds all of the transport: its spec's typed
// parse (pure, fuzzed: FuzzSpecs), P's host half (Open, in the host's
// namespaces, where switches, host taps and helpers live) and K's half
// (Wrap, in the guest's network namespace). A new transport is one new
// file and its tests.

// Host is what P gives a transport's host half.
type Host struct {
	// Logf prints one boot-log line (UML's messages).
	Logf func(format string, args ...any)
	// Stderr is where helper processes (vde_plug, slirp) write.
	Stderr io.Writer
	// UMLNet makes a host tap with the uml_net helper, configured with the
	// gateway address gate; it returns the tap's descriptor and name.
	// nil: no helper available.
	UMLNet func(gate string) (*os.File, string, error)
	// HostFD returns linux's own descriptor n (vecN:transport=fd), or nil
	// when it is not open.
	HostFD func(n int) *os.File

	vecMAC *ether.MAC // the MAC OpenVector chose for the device being opened
}

func (h *Host) logf(format string, args ...any) {
	if h.Logf != nil {
		h.Logf(format, args...)
	}
}

// Spec is a transport's parsed ethN= options.
type Spec interface {
	// Fields renders the spec back as the fields after "TRANSPORT,"
	// (defaults filled in): parsing them gives the same Spec.
	Fields() []string
}

// Driver is one eth transport.
type Driver struct {
	Name string
	// Help is the --help synopsis and a short description; "" for a name
	// UML knows that this build does not offer.
	Help string
	// Parse parses the fields after "NAME,". Its errors are UML's
	// messages. nil: UML knows the name but makes no device (pcap, vector).
	Parse func(fields []string) (Spec, error)
	// Open is P's half: UML's setup lines, then the host side of device
	// unit. nil with Parse set: the transport is refused (Unsupported).
	Open func(h *Host, unit int, s Spec) (*Opened, error)
	// Wrap is K's half: the frame transport over the host side f (which it
	// owns from then on) for device e.
	Wrap func(e plan.Eth, f *os.File) (Transport, error)
	// WrapRx, instead of Wrap, is K's half of a transport whose host side
	// is two descriptors (Opened.Rx): it sends through f and receives
	// through rx.
	WrapRx func(e plan.Eth, f, rx *os.File) (Transport, error)
	// L3: K makes a TUN device (bare IPv4 packets) instead of a TAP.
	L3 bool
}

var drivers = map[string]*Driver{}

// Register adds a transport; it is meant for init functions.
func Register(d *Driver) {
	if _, dup := drivers[d.Name]; dup {
		panic("netdev: transport registered twice: " + d.Name)
	}
	drivers[d.Name] = d
}

// Lookup returns the transport UML knows by name, or nil.
func Lookup(name string) *Driver { return drivers[name] }

// Names lists the transports UML knows, sorted.
func Names() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Supported lists the transports this build can make devices of, sorted.
func Supported() []string {
	var names []string
	for _, n := range Names() {
		if d := drivers[n]; d.Open != nil {
			names = append(names, n)
		}
	}
	return names
}

// Help is the --help text of the transports this build offers.
func Help() string {
	var b strings.Builder
	for _, n := range Supported() {
		if h := drivers[n].Help; h != "" {
			b.WriteString(h)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// SupportedText is Supported for a message: "a, b and c".
func SupportedText() string {
	s := Supported()
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// SplitSpec splits an ethN= value into its transport and fields.
func SplitSpec(spec string) (transport string, fields []string) {
	transport, rest, hasFields := strings.Cut(spec, ",")
	if hasFields {
		fields = strings.Split(rest, ",")
	}
	return transport, fields
}

// Open is P's setup of ethN=spec, as UML's eth_setup and the transport's
// setup do it: an unknown transport is ignored (nil, nil), a known one
// this build lacks is an error, otherwise the transport's Open.
func Open(h *Host, unit int, spec string) (*Opened, error) {
	name, fields := SplitSpec(spec)
	d := drivers[name]
	if d == nil || d.Parse == nil {
		return nil, nil // UML ignores an unknown transport on the command line
	}
	if d.Open == nil {
		return nil, fmt.Errorf("eth_setup - eth%d: the %s transport is not supported by this build (%s are)", unit, name, SupportedText())
	}
	s, err := d.Parse(fields)
	if err != nil {
		return nil, err
	}
	return d.Open(h, unit, s)
}

// Opened is the host side of one eth device, held by P for the machine's
// run (or until the mconsole removes the device).
type Opened struct {
	Eth  plan.Eth
	File *os.File // the descriptor K gets as Eth.Name()
	// Rx is the receive side of a transport that has one of its own
	// (Driver.WrapRx), which K gets as Eth.RxName(); nil for the others.
	Rx *os.File
	// UMLNetTap names a host tap uml_net made: P runs uml_net's address
	// hooks when the guest changes the device's IPv4 addresses.
	UMLNetTap string
	closers   []func()

	kpath  kpathTarget // the host interface of a kernel data path (kpath.go)
	joined *kernelPath // the kernel data path, while it is up
}

// Files are the descriptors K gets for the device: File, then Rx if the
// transport has it.
func (o *Opened) Files() []*os.File {
	if o.Rx != nil {
		return []*os.File{o.File, o.Rx}
	}
	return []*os.File{o.File}
}

// own adds a closer of the host side.
func (o *Opened) own(c func()) { o.closers = append(o.closers, c) }

// Close releases the host side (helper processes, sockets).
func (o *Opened) Close() {
	if o == nil {
		return
	}
	o.LeaveKernel()
	for i := len(o.closers) - 1; i >= 0; i-- {
		o.closers[i]()
	}
	o.closers = nil
}

// newOpened is the Opened of device unit with address mac over f, f
// closed with it.
func newOpened(unit int, transport string, mac ether.MAC, f *os.File, params any) (*Opened, error) {
	e := plan.Eth{Unit: unit, MAC: mac, Transport: transport}
	if params != nil {
		b, err := marshalParams(params)
		if err != nil {
			f.Close()
			return nil, err
		}
		e.Params = b
	}
	o := &Opened{Eth: e, File: f}
	o.own(func() { f.Close() })
	return o, nil
}

// SetupMAC applies UML's setup_etheraddr rules (net.md §1) to the MAC
// field s of device dev and logs its messages: a bad, multicast or zero
// address falls back to a random one.
func SetupMAC(logf func(string, ...any), dev, s string) ether.MAC {
	if s != "" {
		mac, err := ether.ParseMAC(s)
		switch {
		case err != nil:
			logf("setup_etheraddr: failed to parse '%s' as an ethernet address", s)
		case mac.IsMulticast():
			logf("Attempt to assign a multicast ethernet address to a device disallowed")
		case mac.IsZero():
			logf("Attempt to assign an invalid ethernet address to a device disallowed")
		default:
			if !mac.IsLocal() {
				hint := mac
				hint[0] |= 0x02
				logf("Warning: Assigning a globally valid ethernet address to a device")
				logf("You should set the 2nd rightmost bit in the first byte of the MAC,")
				logf("i.e. %s", hint)
			}
			return mac
		}
	}
	logf("Choosing a random ethernet address for device %s", dev)
	return randomMAC()
}

// randomMAC is a random locally administered unicast address.
func randomMAC() ether.MAC {
	var mac ether.MAC
	rand.Read(mac[:])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// field returns f[i], or "" past the end.
func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

func marshalParams(v any) ([]byte, error) { return json.Marshal(v) }

// params decodes e's transport parameters into v.
func params(e plan.Eth, v any) error {
	if err := json.Unmarshal(e.Params, v); err != nil {
		return fmt.Errorf("eth%d: bad %s parameters: %w", e.Unit, e.Transport, err)
	}
	return nil
}

// WrapHost is K's half of device e: d's transport over the host side P
// donated, f and, when d receives through a descriptor of its own
// (WrapRx), rx. It owns both from then on and closes them if it fails.
func (d *Driver) WrapHost(e plan.Eth, f, rx *os.File) (Transport, error) {
	closeAll := func() {
		for _, c := range []*os.File{f, rx} {
			if c != nil {
				c.Close()
			}
		}
	}
	switch {
	case f == nil || d.WrapRx != nil && rx == nil:
		closeAll()
		return nil, errors.New("no host descriptor from the parent")
	case d.WrapRx != nil:
		return d.WrapRx(e, f, rx)
	case d.Wrap == nil:
		closeAll()
		return nil, fmt.Errorf("unknown transport %q", e.Transport)
	}
	if rx != nil {
		rx.Close()
	}
	return d.Wrap(e, f)
}

// wrapFile is the Wrap of transports whose host side reads and writes one
// frame per read(2)/write(2).
func wrapFile(_ plan.Eth, f *os.File) (Transport, error) { return NewFile(f) }

// numField parses f[i] as an unsigned decimal of the given bit size: def
// when the field is missing or empty, UML's message "bad : 'FIELD'" when it
// does not parse.
func numField(f []string, i, bits, def int, bad string) (int, error) {
	s := field(f, i)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%s : '%s'", bad, s)
	}
	return int(v), nil
}
