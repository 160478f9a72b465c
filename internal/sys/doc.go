// Package sys is the one home of the raw Linux system-call helpers that
// umlkit's device, transport and tool packages share.
//
// Layer 0: it imports only the standard library and golang.org/x/sys, and
// "unsafe" only in *_unsafe.go files (checked by internal/repo_test.go).
//
// Raw socket addresses. BindRaw, ConnectRaw, SendtoRaw and RecvfromRaw take
// a sockaddr_un as bytes with its exact length: UML, uml_switch and
// uml_mconsole use abstract addresses with the whole 108-byte sun_path
// (addrlen 110, trailing NULs significant), which unix.SockaddrUnix cannot
// express (it limits and trims names). The caller builds the bytes (see
// switchproto.Sockaddr); this package only hands them to the kernel.
//
// Errors. These raw calls and the Mmsg batch calls retry EINTR and return
// the bare syscall.Errno, not an *os.SyscallError: they sit on per-frame
// paths where EAGAIN is the common result, so they must not allocate, and
// their callers compare the errno (==, errors.Is) and wrap it with their own
// operation name. FilePair and Pollable, which run once per file, return
// *os.SyscallError.
//
// Memory. Every pointer handed to the kernel points into a Go object the
// caller holds for the duration of the call; an Mmsg keeps real Go pointers
// to the buffers and addresses it was given, so they stay alive while set.
//
// Errno texts. Strerror renders an errno exactly as C's strerror(3) does for
// the messages the real C tools print; those strings are user-visible and
// must stay byte-identical.
package sys
