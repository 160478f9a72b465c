package kside

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/sys"
)

// controlPeer serves k's control channel and returns P's end.
func controlPeer(t *testing.T, k *kernel) *net.UnixConn {
	t.Helper()
	p, kf, err := sys.FilePair(unix.SOCK_SEQPACKET, "p", "k")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { k.serveControl(kf); close(done) }()
	c, err := net.FileConn(p)
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	return c.(*net.UnixConn)
}

// ask sends raw bytes (and f) and decodes the answer.
func ask(t *testing.T, c *net.UnixConn, msg []byte, f *os.File) *plan.Reply {
	t.Helper()
	var files []*os.File
	if f != nil {
		files = append(files, f)
	}
	if err := fdpass.Send(c, msg, files...); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, plan.MaxMessage)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := plan.UnmarshalReply(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func req(t *testing.T, r plan.Request) []byte {
	t.Helper()
	b, err := plan.MarshalRequest(&r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestControlServer(t *testing.T) {
	out, _ := logFile(t)
	k := &kernel{plan: &plan.Plan{}, out: out}
	c := controlPeer(t, k)

	r := ask(t, c, req(t, plan.Request{Seq: 1, Op: plan.OpUname}), nil)
	if r.Err() != nil || r.Seq != 1 || len(strings.Fields(r.Text)) < 5 {
		t.Errorf("uname = %+v; want five fields, seq 1", r)
	}
	if r := ask(t, c, req(t, plan.Request{Seq: 2, Op: plan.OpCAD}), nil); !errors.Is(r.Err(), plan.ErrNotRunning) || r.Seq != 2 {
		t.Errorf("cad without a guest = %+v; want not running", r)
	}
	if r := ask(t, c, []byte("uname"), nil); !errors.Is(r.Err(), plan.ErrBadRequest) {
		t.Errorf("a request in the old text form = %+v; want bad request", r)
	}
	if r := ask(t, c, []byte(`{"seq":3,"op":"reboot-host"}`), nil); !errors.Is(r.Err(), plan.ErrBadRequest) || r.Seq != 3 {
		t.Errorf("unknown operation = %+v; want bad request with seq 3", r)
	}

	k.guestPid.Store(int64(os.Getpid())) // "the guest": this process's /proc
	if r := ask(t, c, req(t, plan.Request{Seq: 4, Op: plan.OpUbdRemove, Unit: 3}), nil); !errors.Is(r.Err(), plan.ErrNoDevice) || r.Msg != "Device doesn't exist" {
		t.Errorf("ubd-remove of a missing disk = %+v; want no device, UML's text", r)
	}
	if r := ask(t, c, req(t, plan.Request{Seq: 5, Op: plan.OpEthRemove, Arg: "eth3"}), nil); !errors.Is(r.Err(), plan.ErrNoDevice) {
		t.Errorf("eth-remove of a missing device = %+v; want no device", r)
	}
	if r := ask(t, c, req(t, plan.Request{Seq: 6, Op: plan.OpProc, Arg: "no/such/file"}), nil); !errors.Is(r.Err(), plan.ErrNotFound) || r.Msg != "Failed to open file" {
		t.Errorf("proc of a missing file = %+v; want not found, UML's text", r)
	}
	if r := ask(t, c, req(t, plan.Request{Seq: 7, Op: plan.OpProc, Arg: "self/comm"}), nil); r.Err() != nil || r.Text == "" {
		t.Errorf("proc self/comm = %+v; want its text", r)
	}

	// A failed request does not keep the descriptor that came with it.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r = ask(t, c, req(t, plan.Request{Seq: 8, Op: plan.OpEthAdd, Eth: &plan.Eth{Unit: 0, Transport: "nope"}}), pw)
	pw.Close()
	if r.Err() == nil || !strings.Contains(r.Msg, "unknown transport") {
		t.Errorf("eth-add of an unknown transport = %+v", r)
	}
	pr.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := pr.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the descriptor of a failed eth-add is still open in K (read: %v)", err)
	}
}
