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
// programs keep working in the guest). With trapSysinfo, sysinfo(2) of the
// 64-bit ABI goes to the listener too (Config.Sysinfo answers it).
func Install(trapSysinfo bool) (*os.File, error) {
	if hostSysnums == nil {
		return nil, fmt.Errorf("%w (this is %s)", ErrUnsupportedArch, runtime.GOARCH)
	}
	nums := *hostSysnums
	nums.trapSysinfo = trapSysinfo
	prog, err := program(nums)
	if err != nil {
		return nil, err
	}
	fd, err := installFilter(prog)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "seccomp-listener"), nil
}
