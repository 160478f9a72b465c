// Package gso turns a frame read from a TAP device with IFF_VNET_HDR and
// offloads (a virtio_net_hdr and an Ethernet frame with a partial checksum
// or a GSO super-packet of up to 64 KiB) into the complete, plain frames a
// NIC without offloads would send, as the Linux kernel's software GSO does.
//
// Pure: no I/O, no syscalls, no unsafe; builds on every GOOS. A Segmenter
// owns its output buffers and is not safe for concurrent use; the zero value
// is ready and stops allocating once its buffers have grown to the largest
// frame seen.
//
// # What it does
//
//   - NEEDS_CSUM without GSO: the Internet checksum over [csum_start, end of
//     frame), seeded by what the field holds (the pseudo-header sum), is
//     stored at csum_start+csum_offset; a result of 0 is sent as 0xffff.
//   - TCPv4/TCPv6 (TSO): the payload is cut into gso_size pieces; each
//     segment gets the headers with the IPv4 total length, ID (+1 per
//     segment), header checksum or the IPv6 payload length rewritten, the
//     sequence number advanced, FIN and PSH on the last segment only, CWR on
//     the first only (with or without TypeECN, as the kernel does), and a
//     complete TCP checksum.
//   - UDP (UFO): the UDP checksum is completed over the whole datagram, which
//     is then sent as IP fragments of gso_size bytes (IPv4: same ID, MF and
//     offsets, DF cleared; IPv6: a fragment header with a random
//     identification after the fixed header).
//   - UDP_L4 (USO): one UDP datagram per gso_size bytes of payload, each with
//     its own length and checksum; IPv4 IDs increase as for TCP.
//   - A GSO frame whose payload fits in one gso_size is not GSO (the kernel's
//     rule): it only gets its checksum completed. For TCP the kernel counts
//     the TCP options as payload in that test and then drops a frame whose
//     real payload fits; so does Segment.
//
// Checksums of GSO segments follow the kernel's arithmetic: with NEEDS_CSUM
// the field's seed is moved from the old length to each segment's length
// (so a wrong seed gives a wrong checksum, as in the kernel); without it the
// seed is the pseudo-header sum, as the kernel computes it then. UFO ignores
// the seed and sums the datagram afresh.
//
// # Differences from the kernel
//
// TestIntegrationMatchesKernel writes frames into a TAP device bridged to
// one without offloads and compares what comes out with Segment's output
// byte for byte (only the random IPv6 fragment identification is masked).
// Segment rejects (the caller drops) these frames that Linux 6.18 sends:
//
//   - more than MaxSegments segments, or GSO headers over MaxHeaderLen;
//   - UFO with a gso_size that is not a multiple of 8 (the kernel sends
//     overlapping fragments) or over IPv6 with extension headers (the
//     kernel's fragment offsets then count the extension headers);
//   - an IPv6 payload length or UDP length that does not match the frame
//     (the kernel rewrites it).
//
// Its other rejections (IPv4 length, version or IHL wrong, IPv4 fragments,
// IPv6 fragment or unknown next headers, csum_start or csum_offset not at
// the L4 checksum, a protocol not matching gso_type, USO without NEEDS_CSUM
// or over MaxUSOSegments, ECN on a type other than TCP or UFO) are frames
// the kernel drops too.
//
// Specs: virtio 1.x §5.1.6 (legacy struct virtio_net_hdr, guest-native
// endianness; §5.1.6.2 checksum and segmentation offload), RFC 1071 and
// RFC 791 (IPv4 header, fragmentation), RFC 793 (TCP), RFC 768 (UDP),
// RFC 8200 (IPv6, extension and fragment headers, upper-layer checksums).
package gso
