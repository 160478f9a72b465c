package gso

import (
	"errors"
	"fmt"
)

// Error classes; every error Segment returns wraps one of them (test with
// errors.Is). The errors are made once, so a rejected frame costs no
// allocation.
var (
	// ErrShortHdr: fewer than HdrLen bytes for ParseHdr.
	ErrShortHdr = errors.New("gso: short virtio_net_hdr")
	// ErrHeader: the virtio_net_hdr itself is invalid or points outside
	// the frame.
	ErrHeader = errors.New("gso: bad virtio_net_hdr")
	// ErrFrame: the frame does not match what the header says (not
	// IPv4/IPv6, wrong L4 protocol, inconsistent lengths, truncated).
	ErrFrame = errors.New("gso: malformed frame")
	// ErrLimit: the frame is within the rules but beyond a limit of this
	// package (MaxFrameLen, MaxHeaderLen, MaxSegments).
	ErrLimit = errors.New("gso: frame beyond limits")
)

func wrap(class error, what string) error { return fmt.Errorf("%w: %s", class, what) }

var (
	errGSOType    = wrap(ErrHeader, "unknown gso_type")
	errGSOSize    = wrap(ErrHeader, "gso_size 0 with a gso_type")
	errHdrLen     = wrap(ErrHeader, "hdr_len outside the frame")
	errCsumRange  = wrap(ErrHeader, "csum_start/csum_offset outside the frame")
	errCsumStart  = wrap(ErrHeader, "csum_start is not the L4 header")
	errCsumOffset = wrap(ErrHeader, "csum_offset is not the L4 checksum field")
	errUSOCsum    = wrap(ErrHeader, "USO without NEEDS_CSUM")
	errUFOSize    = wrap(ErrHeader, "UFO gso_size not a multiple of 8")

	errShort     = wrap(ErrFrame, "frame shorter than its headers")
	errEtherType = wrap(ErrFrame, "not IPv4 or IPv6")
	errIPVersion = wrap(ErrFrame, "IP version does not match the EtherType")
	errIPLen     = wrap(ErrFrame, "IP length does not match the frame")
	errFragment  = wrap(ErrFrame, "IP fragment")
	errExtHdr    = wrap(ErrFrame, "unsupported IPv6 extension header")
	errProto     = wrap(ErrFrame, "L4 protocol does not match gso_type")
	errTCPHdr    = wrap(ErrFrame, "bad TCP data offset")
	errUDPLen    = wrap(ErrFrame, "UDP length does not match the frame")
	errTCPFits   = wrap(ErrFrame, "TSO payload fits one segment but TCP options push it over gso_size")

	errFrameLen    = wrap(ErrLimit, "frame longer than MaxFrameLen")
	errHeaderLen   = wrap(ErrLimit, "headers longer than MaxHeaderLen")
	errSegments    = wrap(ErrLimit, "more than MaxSegments segments")
	errUSOSegments = wrap(ErrLimit, "more than MaxUSOSegments USO segments")
	errUFOExt      = wrap(ErrLimit, "UFO over IPv6 with extension headers")
)
