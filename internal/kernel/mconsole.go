package kernel

import (
	"context"
	"syscall"

	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
)

// startMconsole opens <umid dir>/mconsole and serves the commands this
// build implements (version, halt, reboot, help); the full set is issue #5's
// server wired to the devices later.
func (m *machine) startMconsole(ctx context.Context) (*mcserver.Server, error) {
	s, err := mcserver.Listen(m.dir.File("mconsole"))
	if err != nil {
		return nil, err
	}
	s.Handle("version", mcserver.KernelHelp("version"), func(context.Context, *mcserver.Request) mcserver.Reply {
		u, err := m.ask("uname")
		if err != nil {
			return mcserver.Error(err.Error())
		}
		return mcserver.OK(u)
	})
	s.Handle("halt", mcserver.KernelHelp("halt"), func(context.Context, *mcserver.Request) mcserver.Reply {
		return mcserver.Reply{After: func() { m.signalKernel(syscall.SIGUSR1) }}
	})
	s.Handle("reboot", mcserver.KernelHelp("reboot"), func(context.Context, *mcserver.Request) mcserver.Reply {
		return mcserver.Reply{After: func() { m.signalKernel(syscall.SIGUSR2) }}
	})
	go s.Serve(ctx)
	return s, nil
}
