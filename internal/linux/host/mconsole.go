package host

import (
	"context"
	"io"
	"strconv"
	"strings"
	"syscall"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
)

// startMconsole opens <umid dir>/mconsole and serves UML's commands:
// version, halt, reboot, help, cad, stop/go (the freezer cgroup, or
// SIGSTOP/SIGCONT of every guest process but the guard), log, proc (the
// guest's /proc), sysrq, stack, config (queries, and hot-plug of ubd, eth
// and the lines: hotplug.go, console.go) and remove.
func (m *machine) startMconsole(ctx context.Context) (*mcserver.Server, error) {
	s, err := mcserver.Listen(m.dir.File("mconsole"))
	if err != nil {
		return nil, err
	}
	s.Handle("version", mcserver.KernelHelp("version"), func(context.Context, *mcserver.Request) mcserver.Reply {
		u, err := m.ask(plan.Request{Op: plan.OpUname})
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
	s.Handle("cad", mcserver.KernelHelp("cad"), func(context.Context, *mcserver.Request) mcserver.Reply {
		if _, err := m.ask(plan.Request{Op: plan.OpCAD}); err != nil {
			return mcserver.Error(err.Error())
		}
		return mcserver.OK("")
	})
	s.HandleStopGo(func() { m.stopGuest(true) }, func() { m.stopGuest(false) })
	s.Handle("log", mcserver.KernelHelp("log"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		// UML prints the text after "log " verbatim at KERN_WARNING.
		if len(r.Text) > 4 {
			io.WriteString(m.stdio.Out, r.Text[4:])
		}
		return mcserver.OK("")
	})
	s.Handle("proc", mcserver.KernelHelp("proc"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		text, err := m.ask(plan.Request{Op: plan.OpProc, Arg: r.Arg})
		if err != nil {
			return mcserver.Error(err.Error())
		}
		r.Stream("\n")
		for len(text) > 0 {
			n := min(len(text), 4095)
			r.Stream(text[:n])
			text = text[n:]
		}
		return mcserver.OK("")
	})
	s.Handle("sysrq", mcserver.KernelHelp("sysrq"), m.sysrqCommand)
	s.Handle("stack", mcserver.KernelHelp("stack"), m.stackCommand)
	s.Handle("remove", mcserver.KernelHelp("remove"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		return m.remove(strings.TrimLeft(r.Arg, " "))
	})
	s.Handle("config", mcserver.KernelHelp("config"), func(_ context.Context, r *mcserver.Request) mcserver.Reply {
		return m.configQuery(strings.TrimLeft(r.Arg, " "))
	})
	go s.Serve(ctx)
	return s, nil
}

// stopGuest freezes (or thaws) the guest for the mconsole's stop and go:
// with the machine cgroup's freezer where there is one, else with
// SIGSTOP/SIGCONT to every guest process (a shell in the guest then sees
// its jobs stop), saying so once on the console.
func (m *machine) stopGuest(stop bool) {
	if m.cg.Freeze(stop) == nil {
		return
	}
	if stop && !m.sigstopNoted {
		m.sigstopNoted = true
		m.logf("mconsole stop: no cgroup freezer available, stopping the machine's processes with SIGSTOP")
	}
	if stop {
		m.ask(plan.Request{Op: plan.OpStop})
	} else {
		m.ask(plan.Request{Op: plan.OpGo})
	}
}

// configQuery answers "config DEV" queries and hands "config DEV=SPEC"
// changes to configSet (hotplug.go) or the lines (console.go).
func (m *machine) configQuery(arg string) mcserver.Reply {
	if strings.HasPrefix(arg, "con") || strings.HasPrefix(arg, "ssl") {
		return m.lineConfigQuery(arg) // queries and changes (console.go)
	}
	if strings.Contains(arg, "=") {
		return m.configSet(arg)
	}
	switch {
	case strings.HasPrefix(arg, "ubd"):
		unit, ok := ubdUnit(arg[3:])
		if !ok {
			return mcserver.Error("ubd_get_config : device number out of range")
		}
		m.cfgMu.Lock()
		u := m.cfg.Ubd[unit]
		m.cfgMu.Unlock()
		if u == nil {
			return mcserver.OK("")
		}
		if u.Backing != "" {
			return mcserver.OK(u.File + "," + u.Backing)
		}
		return mcserver.OK(u.File)
	case strings.HasPrefix(arg, "con"), strings.HasPrefix(arg, "ssl"):
		return m.lineConfigQuery(arg)
	case strings.HasPrefix(arg, "eth"), strings.HasPrefix(arg, "vec"):
		return mcserver.Error("No get_config routine defined")
	}
	return mcserver.Error("Bad configuration option")
}

// ubdUnit parses a ubd unit: a number 0-15 or a letter a-p.
func ubdUnit(s string) (int, bool) {
	if len(s) == 1 && s[0] >= 'a' && s[0] <= 'p' {
		return int(s[0] - 'a'), true
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil || n > 15 {
		return 0, false
	}
	return int(n), true
}
