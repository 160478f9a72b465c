package host

import (
	"context"
	"strconv"
	"strings"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mconsole/mcserver"
)

// sysrqCommand serves "sysrq [LETTER]" (P side): the handler's lines
// stream back as more=1 packets; for b the empty OK goes first, as UML
// sends it before resetting.
func (m *machine) sysrqCommand(_ context.Context, r *mcserver.Request) mcserver.Reply {
	arg := strings.TrimLeft(r.Arg, " ")
	c := byte(0)
	if arg != "" {
		c = arg[0]
	}
	if c == 'b' {
		return mcserver.Reply{After: func() { m.ask(plan.Request{Op: plan.OpSysrq, Arg: "b"}) }}
	}
	text, err := m.ask(plan.Request{Op: plan.OpSysrq, Arg: string([]byte{c})})
	if err != nil {
		return mcserver.Error(err.Error())
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		r.Stream(line)
	}
	return mcserver.OK("")
}

// stackCommand serves "stack PID" (P side).
func (m *machine) stackCommand(_ context.Context, r *mcserver.Request) mcserver.Reply {
	arg := strings.TrimLeft(r.Arg, " ")
	end := 0
	for end < len(arg) && arg[end] >= '0' && arg[end] <= '9' {
		end++
	}
	if end == 0 {
		return mcserver.Error("Please specify a pid")
	}
	pid, err := strconv.Atoi(arg[:end])
	if err != nil || pid == 0 {
		return mcserver.Error("Couldn't find that pid")
	}
	text, err := m.ask(plan.Request{Op: plan.OpStack, Pid: pid})
	if err != nil {
		return mcserver.Error(err.Error())
	}
	r.Stream(text)
	return mcserver.OK("")
}
