package host

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/umlkit/umlkit/internal/linux/plan"
)

// openInitrd opens the initrd= image for K (P opens it with the invoking
// user's rights; K only reads the descriptor). Like UML, an image that
// cannot be had is a boot-log line and the boot goes on without it; one
// larger than mem= is UML's panic (returned by the mconsole stage, after
// the log's head).
func (m *machine) openInitrd(p *plan.Plan) {
	c := m.cfg
	path := c.Initrd
	errno := func(err error) int {
		var e syscall.Errno
		errors.As(err, &e)
		return int(e)
	}
	st, err := os.Stat(path)
	if err != nil {
		m.initrdLog = fmt.Sprintf("Couldn't stat \"%s\" : err = %d", path, errno(err))
		return
	}
	if st.Size() == 0 {
		m.initrdLog = fmt.Sprintf("\"%s\" is empty", path)
		return
	}
	if c.Mem > 0 && uint64(st.Size()) > c.Mem {
		// UML loads the image into the machine's memory first.
		m.initrdPanic = fmt.Sprintf("uml_load_file: Failed to allocate %d bytes", st.Size())
		return
	}
	f, err := os.Open(path)
	if err != nil {
		m.initrdLog = fmt.Sprintf("Opening '%s' failed - err = %d", path, errno(err))
		return
	}
	if st.IsDir() {
		f.Close()
		m.initrdLog = fmt.Sprintf("Read of %d bytes from '%s' failed, err = %d", st.Size(), path, int(syscall.EISDIR))
		return
	}
	m.initrd = f
	rdinit := c.RDInit
	if rdinit == "" {
		rdinit = "/init"
	}
	p.Initrd = &plan.Initrd{Path: path, Size: st.Size(), RDInit: rdinit, TmpfsSize: c.Mem}
}

// kernelPanic is a panic of the machine before K runs: the boot log's
// "Kernel panic - not syncing: " line and exit status 134, as UML.
type kernelPanic struct{ msg string }

func (p *kernelPanic) Error() string { return "Kernel panic - not syncing: " + p.msg }
