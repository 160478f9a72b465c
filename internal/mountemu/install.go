package mountemu

import (
	"fmt"
	"os"
	"runtime"
)

// Install loads the mount filter for the calling thread and returns the
// listener. The caller must have locked its OS thread and must exec from it
// (the filter is per thread; exec makes it the process's). The caller needs
// CAP_SYS_ADMIN in its user namespace (no_new_privs is not set, so setuid
// programs keep working in the guest).
func Install() (*os.File, error) {
	if hostSysnums == nil {
		return nil, fmt.Errorf("%w (this is %s)", ErrUnsupportedArch, runtime.GOARCH)
	}
	prog, err := program(*hostSysnums)
	if err != nil {
		return nil, err
	}
	fd, err := installFilter(prog)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "seccomp-listener"), nil
}
