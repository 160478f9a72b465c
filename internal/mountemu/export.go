package mountemu

// InGuest runs fn on K's guest worker thread inside the mount namespace,
// root and working directory of guest process pid (host pid), for the
// kernel's other mount work (mconsole hot-plug, sysrq u). Paths fn uses are
// the guest's.
func InGuest(pid int, fn func() error) error { return inGuest(uint32(pid), fn) }
