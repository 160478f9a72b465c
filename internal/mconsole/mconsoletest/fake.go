// Package mconsoletest runs a fake 6.1 kernel mconsole over a real unix
// socket for tests of clients (ours and Debian's uml_mconsole): every kernel
// command is registered with deterministic replies, and the server records
// the request texts it receives.
package mconsoletest

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
)

// Version is the fake kernel's "version" reply.
const Version = "Linux fake 6.1.176 #1 SMP Sat Jul  4 15:38:16 UTC 2026 x86_64"

// ProcText is the content "proc <anything>" streams (after a "\n" packet).
var ProcText = strings.Repeat("MemTotal:          57372 kB\n", 60)

// Fake is a running fake kernel mconsole.
type Fake struct {
	Server *mcserver.Server
	// Dir is the umid directory holding the socket ("mconsole").
	Dir string

	mu       sync.Mutex // guards requests
	requests []string
}

// Path returns the socket path.
func (f *Fake) Path() string { return f.Server.Path() }

// Requests returns the request texts received so far.
func (f *Fake) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// Start serves a fake kernel at <dir>/mconsole until the test ends. dir ""
// means a fresh temp dir.
func Start(t testing.TB, dir string) *Fake {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := mcserver.Listen(filepath.Join(dir, "mconsole"))
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{Server: s, Dir: dir}
	rec := func(h mcserver.HandlerFunc) mcserver.HandlerFunc {
		return func(ctx context.Context, r *mcserver.Request) mcserver.Reply {
			f.mu.Lock()
			f.requests = append(f.requests, r.Text)
			f.mu.Unlock()
			return h(ctx, r)
		}
	}
	ok := func(string) mcserver.HandlerFunc {
		return func(context.Context, *mcserver.Request) mcserver.Reply { return mcserver.OK("") }
	}
	s.Handle("version", mcserver.KernelHelp("version"), rec(func(context.Context, *mcserver.Request) mcserver.Reply {
		return mcserver.OK(Version)
	}))
	s.Handle("help", mcserver.KernelHelp("help"), rec(func(context.Context, *mcserver.Request) mcserver.Reply {
		return mcserver.OK(s.HelpText())
	}))
	for _, n := range []string{"halt", "reboot", "cad", "log"} {
		s.Handle(n, mcserver.KernelHelp(n), rec(ok(n)))
	}
	s.Handle("config", mcserver.KernelHelp("config"), rec(func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		if strings.Contains(r.Arg, "=") {
			return mcserver.OK(r.Text) // echo: shows the client's rewriting
		}
		return mcserver.OK("")
	}))
	s.Handle("remove", mcserver.KernelHelp("remove"), rec(func(context.Context, *mcserver.Request) mcserver.Reply {
		return mcserver.Errno(19, "Device doesn't exist")
	}))
	s.Handle("sysrq", mcserver.KernelHelp("sysrq"), rec(func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		r.Stream("sysrq: Show Memory\n")
		r.Stream("Mem-Info:\n")
		return mcserver.OK("")
	}))
	s.Handle("proc", mcserver.KernelHelp("proc"), rec(func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		if strings.TrimSpace(r.Arg) == "" {
			return mcserver.Error("Read of file failed")
		}
		r.Stream("\n")
		r.Stream(ProcText)
		return mcserver.OK("")
	}))
	s.Handle("stack", mcserver.KernelHelp("stack"), rec(func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		if strings.TrimSpace(r.Arg) == "" {
			return mcserver.Error("Please specify a pid")
		}
		return mcserver.Error("Couldn't find that pid")
	}))
	s.HandleStopGo(func() {}, func() {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return f
}
