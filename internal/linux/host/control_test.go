package host

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/fdpass"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/sys"
)

// fakeK answers each request with a stale reply (an older sequence
// number, as from a request that timed out) and then with reply(req).
func fakeK(t *testing.T, reply func(*plan.Request) plan.Reply) *controlClient {
	t.Helper()
	p, k, err := sys.FilePair(unix.SOCK_SEQPACKET, "p", "k")
	if err != nil {
		t.Fatal(err)
	}
	c, err := newControlClient(p)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := net.FileConn(k)
	k.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		uc := kc.(*net.UnixConn)
		for {
			msg, _, _, err := fdpass.Recv(uc, plan.MaxMessage, 1)
			if err != nil && !errors.Is(err, fdpass.ErrNoFD) || len(msg) == 0 {
				return
			}
			req, err := plan.UnmarshalRequest(msg)
			if err != nil {
				t.Errorf("K received a bad request: %v", err)
				return
			}
			stale := plan.Reply{Seq: req.Seq - 1, Text: "stale"}
			b, _ := plan.MarshalReply(&stale)
			uc.Write(b)
			r := reply(req)
			b, _ = plan.MarshalReply(&r)
			uc.Write(b)
		}
	}()
	t.Cleanup(func() { c.Close(); kc.Close(); <-done })
	return c
}

func TestControlClient(t *testing.T) {
	c := fakeK(t, func(r *plan.Request) plan.Reply {
		switch r.Op {
		case plan.OpUname:
			return plan.ReplyTo(r, "Linux host 6.1 #1 x86_64", nil)
		case plan.OpUbdRemove:
			return plan.ReplyTo(r, "", plan.ErrBusy)
		}
		return plan.ReplyTo(r, "", plan.Errorf(plan.CodeNoDevice, "Device doesn't exist"))
	})
	for i := 0; i < 2; i++ { // the second request must not take the first's late answers
		text, err := c.do(plan.Request{Op: plan.OpUname}, nil)
		if err != nil || text != "Linux host 6.1 #1 x86_64" {
			t.Errorf("uname = %q, %v", text, err)
		}
	}
	if _, err := c.do(plan.Request{Op: plan.OpUbdRemove, Unit: 1}, nil); !errors.Is(err, plan.ErrBusy) {
		t.Errorf("ubd-remove = %v; want ErrBusy", err)
	}
	_, err := c.do(plan.Request{Op: plan.OpEthRemove, Arg: "eth1"}, nil)
	if !errors.Is(err, plan.ErrNoDevice) || errors.Is(err, plan.ErrBusy) || err.Error() != "Device doesn't exist" {
		t.Errorf("eth-remove = %v; want ErrNoDevice with UML's text", err)
	}
	if _, err := c.do(plan.Request{Op: "nonsense"}, nil); err == nil {
		t.Error("an invalid request was sent")
	}
	m := &machine{}
	if _, err := m.ask(plan.Request{Op: plan.OpUname}); !errors.Is(err, plan.ErrNotRunning) {
		t.Errorf("ask without K = %v; want ErrNotRunning", err)
	}
}
