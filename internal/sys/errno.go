package sys

import (
	"errors"
	"syscall"
)

// Strerror returns C's strerror(3) text for the errno err wraps: Go's text
// with its first letter capitalised ("No such file or directory"). A nil
// err is "Success"; an error that wraps no errno is rendered by its Error
// method, unchanged.
func Strerror(err error) string {
	if err == nil {
		return "Success"
	}
	var en syscall.Errno
	if !errors.As(err, &en) {
		return err.Error()
	}
	s := en.Error()
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// ErrnoOf returns the errno err wraps (found with errors.As), 0 for a nil
// err, and def for an error that wraps none.
func ErrnoOf(err error, def syscall.Errno) syscall.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return def
}
