package mcserver

import "github.com/umlkit/umlkit/internal/sys"

// rawAddr is a sender address kept as the kernel gave it. Go's own sockaddr
// decoding cuts abstract names at the first NUL, but uml_mconsole binds the
// 108-byte abstract name "\0" + "%5d" + zero fill: replying to the cut name
// would reach nobody, so the bytes and length are kept verbatim.
type rawAddr struct {
	b [128]byte
	n uint32
}

func recvfrom(fd int, p []byte, from *rawAddr) (int, error) {
	n, alen, err := sys.RecvfromRaw(fd, p, 0, from.b[:])
	from.n = uint32(alen)
	return n, err
}

func sendto(fd int, p []byte, to *rawAddr) error {
	return sys.SendtoRaw(fd, p, 0, to.b[:to.n])
}
