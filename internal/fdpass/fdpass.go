// Package fdpass sends and receives open file descriptors over unix sockets
// (SCM_RIGHTS), as UML's helpers do: uml_net returns a tap fd, port-helper
// returns a terminal fd, and linux passes device fds between its own roles.
//
// Received fds are close-on-exec. A message carries the data bytes the
// protocol needs (often a single byte or a name) alongside the fds.
package fdpass

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNoFD is returned by Recv when a message arrived without an fd.
var ErrNoFD = errors.New("message carried no file descriptor")

// Send writes data with files attached as SCM_RIGHTS to conn. For datagram
// sockets that are not connected, use SendTo.
func Send(conn *net.UnixConn, data []byte, files ...*os.File) error {
	return SendTo(conn, nil, data, files...)
}

// SendTo is Send with an explicit destination address (nil when connected).
func SendTo(conn *net.UnixConn, to *net.UnixAddr, data []byte, files ...*os.File) error {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if len(data) == 0 {
		data = []byte{0}
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, oobn, err := conn.WriteMsgUnix(data, oob, to)
	if err != nil {
		return fmt.Errorf("send fds: %w", err)
	}
	if n != len(data) || oobn != len(oob) {
		return fmt.Errorf("send fds: short write (%d/%d data, %d/%d control)", n, len(data), oobn, len(oob))
	}
	return nil
}

// Recv reads one message of at most bufSize data bytes and returns its data
// and the files it carried (named "fdpass:<n>"). Extra fds beyond maxFDs are
// closed. It returns ErrNoFD (with the data) if none were attached.
func Recv(conn *net.UnixConn, bufSize, maxFDs int) ([]byte, []*os.File, *net.UnixAddr, error) {
	if maxFDs < 1 {
		maxFDs = 1
	}
	buf := make([]byte, bufSize)
	oob := make([]byte, unix.CmsgSpace(4*maxFDs))
	n, oobn, _, from, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("receive fds: %w", err)
	}
	files, err := parse(oob[:oobn], maxFDs)
	if err != nil {
		return buf[:n], nil, from, err
	}
	if len(files) == 0 {
		return buf[:n], nil, from, ErrNoFD
	}
	return buf[:n], files, from, nil
}

func parse(oob []byte, maxFDs int) ([]*os.File, error) {
	fds, err := ParseRights(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, fd := range fds {
		if len(files) >= maxFDs {
			unix.Close(fd)
			continue
		}
		files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("fdpass:%d", fd)))
	}
	return files, nil
}

// ParseRights returns the descriptors carried by the SCM_RIGHTS messages in
// oob (the control bytes of one received message, e.g. from ReadMsgUnix),
// each marked close-on-exec; the caller owns them. Control messages of
// other types are skipped.
func ParseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range got {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
