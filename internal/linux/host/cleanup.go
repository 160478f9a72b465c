package host

import (
	"fmt"
	"os"

	"github.com/umlkit/umlkit/internal/cgroup"
	"github.com/umlkit/umlkit/internal/cmdline"
	"github.com/umlkit/umlkit/internal/umid"
)

// cleanupMain is `linux --cleanup [uml_dir=DIR]`: it removes what
// machines killed with SIGKILL left behind and that a start of the same
// umid would otherwise clean: the user's machine cgroups anywhere in the
// unified and the v1 memory hierarchies (killing what a dead machine's
// guest left running), the instance directories of dead machines in the
// uml_dir, and, run by root, the state of free id blocks. Live machines
// and cgroups younger than cgroup.MinAge are left alone. It prints a line
// for each thing it removed (stdout) or could not (stderr) and returns 1
// when something could not go.
func cleanupMain(c *cmdline.Config, stdio Stdio) int {
	code := 0
	left := func(format string, args ...any) {
		fmt.Fprintf(stdio.Err, "linux: cleanup: "+format+"\n", args...)
		code = 1
	}
	s := &cgroup.Sweeper{UID: os.Geteuid(), MinAge: cgroup.MinAge, Kill: true}
	var results []cgroup.Result
	if mnt, err := cgroup.V2Mount(); err == nil {
		results = append(results, s.Tree(mnt, true)...)
	}
	if mnt, err := cgroup.V1Mount("memory"); err == nil {
		results = append(results, s.Tree(mnt, false)...)
	}
	for _, r := range results {
		switch r.Verdict {
		case cgroup.Removed:
			if r.Killed {
				fmt.Fprintf(stdio.Out, "removed cgroup %s (killed the processes its guest left)\n", r.Path)
			} else {
				fmt.Fprintf(stdio.Out, "removed cgroup %s\n", r.Path)
			}
		case cgroup.Leftovers, cgroup.Failed:
			left("left cgroup %s: %v", r.Path, r.Err)
		}
	}
	umlDir := c.UmlDir
	if umlDir == "" {
		var err error
		if umlDir, err = umid.DefaultUmlDir(); err != nil {
			left("%v", err)
		}
	}
	if umlDir != "" {
		for _, sw := range umid.Sweep(umlDir) {
			if sw.Err != nil {
				left("left umid directory %s: %v", sw.Path, sw.Err)
			} else {
				fmt.Fprintf(stdio.Out, "removed umid directory %s (pid %d is gone)\n", sw.Path, sw.Pid)
			}
		}
	}
	if os.Geteuid() == 0 {
		for _, b := range sweepIDBlocks() {
			if b.killed > 0 {
				fmt.Fprintf(stdio.Out, "killed %d processes left with the ids of id block %d\n", b.killed, b.slot)
			}
			if b.dir != "" {
				fmt.Fprintf(stdio.Out, "removed %s (id block %d)\n", b.dir, b.slot)
			}
			if b.err != nil {
				left("id block %d: %v", b.slot, b.err)
			}
		}
	}
	return code
}
