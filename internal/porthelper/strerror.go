package porthelper

import (
	"errors"
	"syscall"
)

// Strerror returns glibc's strerror(3) text for err's errno ("Inappropriate
// ioctl for device"), which the real helper prints; Go's texts are the same
// words with a lower-case first letter. Non-errno errors print as is.
func Strerror(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	if len(s) > 0 && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
