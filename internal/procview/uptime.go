package procview

import (
	"fmt"
	"strconv"
	"strings"
)

// Uptime is a /proc/uptime: seconds since boot and idle seconds summed over
// the CPUs, both in hundredths as the kernel prints them.
type Uptime struct {
	Up, Idle uint64 // 1/100 s
}

// ParseUptime parses "UP.HH IDLE.HH\n".
func ParseUptime(b []byte) (Uptime, error) {
	if len(b) > 128 {
		return Uptime{}, ErrTooLong
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return Uptime{}, ErrMalformed
	}
	up, err1 := parseHundredths(f[0])
	idle, err2 := parseHundredths(f[1])
	if err1 != nil || err2 != nil {
		return Uptime{}, ErrMalformed
	}
	return Uptime{up, idle}, nil
}

func parseHundredths(s string) (uint64, error) {
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 || whole == "" {
		return 0, ErrMalformed
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || w > 1<<40 {
		return 0, ErrMalformed
	}
	c, err := strconv.ParseUint(frac, 10, 64)
	if err != nil {
		return 0, ErrMalformed
	}
	return w*100 + c, nil
}

// Bytes renders the text as the kernel does.
func (u Uptime) Bytes() []byte {
	return []byte(fmt.Sprintf("%d.%02d %d.%02d\n", u.Up/100, u.Up%100, u.Idle/100, u.Idle%100))
}

// Clock says where the machine's time starts on the host's.
type Clock struct {
	// BootOffset is the machine's boot on the host's CLOCK_BOOTTIME, whole
	// seconds: the machine's uptime is the host's minus it (the offset
	// of the machine's time namespace, negated).
	BootOffset uint64
	// Idle is the host's idle figure at the machine's boot.
	Idle uint64 // 1/100 s
	// CPUs the machine may use and CPUs the host has online.
	CPUs, HostCPUs int
}

// RenderUptime returns the machine's /proc/uptime from the host's: the
// seconds since the machine booted (what the kernel shows a process in the
// machine's time namespace, to the hundredth), and the host's idle time
// since then scaled to the machine's share of the CPUs, at most the
// uptime times that number of CPUs.
func RenderUptime(host []byte, c Clock) ([]byte, error) {
	h, err := ParseUptime(host)
	if err != nil {
		return nil, err
	}
	up := h.Up - min(h.Up, c.BootOffset*100)
	idle := h.Idle - min(h.Idle, c.Idle)
	if c.HostCPUs > 0 && c.CPUs > 0 && c.CPUs < c.HostCPUs {
		idle = idle / uint64(c.HostCPUs) * uint64(c.CPUs)
	}
	if c.CPUs > 0 {
		idle = min(idle, up*uint64(min(c.CPUs, MaxCPUs)))
	}
	return Uptime{up, idle}.Bytes(), nil
}
