package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/sys"
)

// P's end of the control channel (plan/control.go): one typed request at
// a time, the answer matched by its sequence number.

// controlTimeout bounds one request.
const controlTimeout = 10 * time.Second

func controlPair() (p, k *os.File, err error) {
	return sys.FilePair(unix.SOCK_SEQPACKET, "control-p", plan.FDControl)
}

type controlClient struct {
	mu   sync.Mutex // one request at a time; guards seq
	conn *net.UnixConn
	seq  uint64
}

func newControlClient(f *os.File) (*controlClient, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("kernel control: not a unix socket")
	}
	return &controlClient{conn: uc}, nil
}

// do sends req with the descriptors of files (nil ones left out) and
// waits for the answer: its text, or its coded error (plan.Error).
func (c *controlClient) do(req plan.Request, files ...*os.File) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetDeadline(time.Now().Add(controlTimeout))
	c.seq++
	req.Seq = c.seq
	b, err := plan.MarshalRequest(&req)
	if err != nil {
		return "", fmt.Errorf("kernel control: %w", err)
	}
	var fds []*os.File
	for _, f := range files {
		if f != nil {
			fds = append(fds, f)
		}
	}
	if err := fdpass.Send(c.conn, b, fds...); err != nil {
		return "", fmt.Errorf("kernel control: %w", err)
	}
	buf := make([]byte, plan.MaxMessage)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return "", fmt.Errorf("kernel control: %w", err)
		}
		rep, err := plan.UnmarshalReply(buf[:n])
		if err != nil {
			return "", fmt.Errorf("kernel control: %w", err)
		}
		if rep.Seq == req.Seq { // an older answer arrived after its request timed out
			return rep.Text, rep.Err()
		}
	}
}

func (c *controlClient) Close() error { return c.conn.Close() }

// errNotRunning answers requests while no K runs.
var errNotRunning = plan.Errorf(plan.CodeNotRunning, "the kernel is not running")

// ask sends a control request to the running K.
func (m *machine) ask(req plan.Request) (string, error) { return m.askWith(req) }

// askWith sends a control request with descriptors for K.
func (m *machine) askWith(req plan.Request, files ...*os.File) (string, error) {
	m.mu.Lock()
	ctl := m.ctl
	m.mu.Unlock()
	if ctl == nil {
		return "", errNotRunning
	}
	return ctl.do(req, files...)
}
