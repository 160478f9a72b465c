package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// console: guest output throughput through a console line (64 MiB written
// with dd to /dev/tty1, con1=null): the guest's tty layer plus, for ours,
// the pty to the kernel process that drains it.
const consoleScript = `T=/bench/benchtool
t0=$($T now); dd if=/dev/zero of=/dev/tty1 bs=64k count=1024 2>/dev/null; t1=$($T now)
echo "CON write_ns=$((t1-t0))"
poweroff -f
`

func init() {
	re := regexp.MustCompile(`CON write_ns=(\d+)`)
	guest := func(k string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			argv := bootArgs(e, k, e.Vars["console-"+k], "con1=null")
			_, _, out, err := runGuest(argv, func(l string) bool { return strings.Contains(l, "CON write_ns") }, 3*time.Minute)
			if err != nil {
				return nil, err
			}
			m := re.FindStringSubmatch(out)
			if m == nil {
				return nil, fmt.Errorf("no CON line in:\n%s", out)
			}
			ns, _ := strconv.ParseFloat(m[1], 64)
			return []Metric{{"guest write 64 MiB to tty1 (con1=null)", 64 / (ns / 1e9), "MB/s"}}, nil
		}
	}
	register(&Benchmark{
		Name: "console",
		Doc:  "guest output throughput through a console line (dd to /dev/tty1, con1=null): ours vs linux.uml",
		Setup: func(e *Env) error {
			for _, k := range []string{"ours", "real"} {
				img, err := guestImage(e, "console-"+k, consoleScript)
				if err != nil {
					return err
				}
				e.Vars["console-"+k] = img
			}
			return nil
		},
		Variants: []Variant{
			{Name: "ours", Run: guest("ours")},
			{Name: "real", Run: guest("real")},
		},
	})
}
