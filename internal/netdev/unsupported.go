//go:build linux

package netdev

import "errors"

// Transports UML knows that this build does not make: an ethN= naming
// ethertap or slip is refused with a message; pcap and vector are
// ignored, as UML ignores a transport it was built without. (The vector
// transports are vecN= devices, not ethN=.)

func init() {
	refuse := func([]string) (Spec, error) { return nil, errors.New("unsupported") }
	for _, name := range []string{"ethertap", "slip"} {
		Register(&Driver{Name: name, Parse: refuse})
	}
	for _, name := range []string{"pcap", "vector"} {
		Register(&Driver{Name: name})
	}
}
