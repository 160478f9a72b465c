// Package procstatus decodes the credential lines of a /proc/PID/status
// text: Uid and Gid (real, effective, saved, file-system), Groups and
// CapEff. It is pure (no I/O): the reader's user namespace decides what
// the ids mean. The blockfuse export's permission checks, the mount
// emulator's caller checks and linux's id-block reaper all read a process
// through it.
package procstatus

import (
	"errors"
	"strconv"
	"strings"
)

// Index of each id in Status.Uid and Status.Gid.
const (
	Real = iota
	Effective
	Saved
	FS
)

// Status is a process's credentials.
type Status struct {
	Uid, Gid [4]uint32 // by Real, Effective, Saved, FS
	Groups   []uint32  // supplementary groups
	CapEff   uint64    // effective capabilities
}

// ErrIncomplete is returned for a text that lacks Uid, Gid or CapEff.
var ErrIncomplete = errors.New("procstatus: Uid, Gid or CapEff line missing")

// ErrMalformed is returned for a credential line that does not parse.
var ErrMalformed = errors.New("procstatus: malformed credential line")

// Parse decodes the credential lines of status.
func Parse(status string) (Status, error) {
	var st Status
	seen := 0
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			if len(f) != 4 {
				return Status{}, ErrMalformed
			}
			dst := &st.Uid
			if key == "Gid" {
				dst = &st.Gid
			}
			for i, s := range f {
				id, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return Status{}, ErrMalformed
				}
				dst[i] = uint32(id)
			}
			seen++
		case "Groups":
			for _, s := range f {
				id, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return Status{}, ErrMalformed
				}
				st.Groups = append(st.Groups, uint32(id))
			}
		case "CapEff":
			if len(f) != 1 {
				return Status{}, ErrMalformed
			}
			c, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				return Status{}, ErrMalformed
			}
			st.CapEff = c
			seen++
		}
	}
	if seen != 3 {
		return Status{}, ErrIncomplete
	}
	return st, nil
}

// HasCap reports whether capability n is effective.
func (s Status) HasCap(n uint) bool { return n < 64 && s.CapEff&(1<<n) != 0 }
