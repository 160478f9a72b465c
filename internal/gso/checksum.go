package gso

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the Internet checksum (RFC 1071) of b with initial (a
// partial sum such as PseudoHeaderSum4's) added: the ones' complement of
// the ones' complement sum of b's big-endian 16-bit words, an odd last byte
// padded with zero. Data whose checksum field holds a correct value sums to
// a Checksum of 0.
func Checksum(b []byte, initial uint32) uint16 {
	return ^fold(uint64(initial) + uint64(Sum(b)))
}

// Sum returns the ones' complement sum of b's big-endian 16-bit words
// (an odd last byte padded with zero), folded to 16 bits. b must start at
// an even offset of the checksummed data.
func Sum(b []byte) uint16 {
	// The ones' complement sum does not depend on byte order (RFC 1071
	// §2(B)): add little-endian 64-bit words with end-around carry and
	// swap the folded result.
	return bits.ReverseBytes16(fold(sumLE(b)))
}

// PseudoHeaderSum4 returns the sum of the IPv4 pseudo-header (RFC 793 §3.1,
// RFC 768) for an upper-layer packet of length bytes.
func PseudoHeaderSum4(src, dst [4]byte, proto uint8, length int) uint32 {
	return pseudoSum(src[:], dst[:], proto, length)
}

// PseudoHeaderSum6 returns the sum of the IPv6 pseudo-header (RFC 8200
// §8.1) for an upper-layer packet of length bytes.
func PseudoHeaderSum6(src, dst [16]byte, proto uint8, length int) uint32 {
	return pseudoSum(src[:], dst[:], proto, length)
}

// pseudoSum adds the addresses (4 or 16 bytes each), the protocol and the
// length (as a 32-bit field, which is the IPv4 layout summed the same way).
func pseudoSum(src, dst []byte, proto uint8, length int) uint32 {
	s := uint32(Sum(src)) + uint32(Sum(dst)) + uint32(proto)
	return s + uint32(length>>16) + uint32(length&0xffff)
}

// fold reduces a sum to 16 bits with end-around carry.
func fold(a uint64) uint16 {
	for a > 0xffff {
		a = a>>16 + a&0xffff
	}
	return uint16(a)
}

// sumLE adds b as little-endian 64-bit words with end-around carry; a tail
// of fewer than 8 bytes is added as the zero-padded word it starts.
func sumLE(b []byte) uint64 {
	var acc, c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if len(b) >= 2 {
			tail |= uint64(binary.LittleEndian.Uint16(b)) << 32
			b = b[2:]
			if len(b) == 1 {
				tail |= uint64(b[0]) << 48
			}
		} else if len(b) == 1 {
			tail |= uint64(b[0]) << 32
		}
	} else if len(b) >= 2 {
		tail = uint64(binary.LittleEndian.Uint16(b))
		if len(b) == 3 {
			tail |= uint64(b[2]) << 16
		}
	} else if len(b) == 1 {
		tail = uint64(b[0])
	}
	acc, c = bits.Add64(acc, tail, c)
	return acc + c // no overflow: tail < 2^56, so acc is small when c is 1
}
