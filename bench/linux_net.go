package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// linux-net: TCP throughput from a guest's eth0=tuntap,TAP to a sink in the
// host side of the tap, our linux vs Debian's linux.uml on the same image.
// Everything runs in a network namespace created around each measurement
// (needs root); the guest sends 32 MiB three times with the static Go
// tcptool of switch-tcp, timed between its console markers.
func init() {
	const mib = 32
	run := func(kind string) func(*Env) ([]Metric, error) {
		return func(e *Env) ([]Metric, error) {
			ns := fmt.Sprintf("umlkit-bench-lnet-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
			if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
			}
			defer exec.Command("ip", "netns", "del", ns).Run()
			for _, args := range [][]string{
				{"link", "set", "lo", "up"},
				{"tuntap", "add", "dev", "benchtap0", "mode", "tap"},
				{"addr", "add", "10.77.9.1/24", "dev", "benchtap0"},
				{"link", "set", "benchtap0", "up"},
			} {
				if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
					return nil, fmt.Errorf("ip %v: %v: %s", args, err, out)
				}
			}
			sink := exec.Command("ip", "netns", "exec", ns, e.Vars["tcptool"], "sink", "5001")
			sink.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := sink.Start(); err != nil {
				return nil, err
			}
			defer func() { syscall.Kill(-sink.Process.Pid, syscall.SIGKILL); sink.Wait() }()
			img := filepath.Join(e.Dir, kind+"-net.img")
			data, err := os.ReadFile(e.Vars["netimg"])
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(img, data, 0o644); err != nil {
				return nil, err
			}
			argv := bootArgs(e, kind, img, "eth0=tuntap,benchtap0")
			log := &markerLog{times: map[string]time.Time{}}
			cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
			cmd.Env = append(os.Environ(), "TMPDIR="+os.TempDir())
			cmd.Stdout, cmd.Stderr = log, log
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdin, _ := cmd.StdinPipe()
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				return nil, err
			}
			defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
			deadline := time.Now().Add(120 * time.Second)
			for {
				if _, ok := log.get("TX-DONE-3"); ok {
					break
				}
				if time.Now().After(deadline) {
					log.mu.Lock()
					defer log.mu.Unlock()
					return nil, fmt.Errorf("%s: transfers did not finish; console:\n%s", kind, log.buf.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			var rates []float64
			for r := 1; r <= 3; r++ {
				t0, _ := log.get(fmt.Sprintf("TX-START-%d", r))
				t1, _ := log.get(fmt.Sprintf("TX-DONE-%d", r))
				rates = append(rates, float64(mib)*1048576/t1.Sub(t0).Seconds()/1e6)
			}
			return []Metric{{"guest TCP to host tap", median(rates), "MB/s"}}, nil
		}
	}
	register(&Benchmark{
		Name: "linux-net",
		Doc:  "TCP from the guest over eth0=tuntap,TAP to a sink on the host tap (32 MiB x3), our linux vs linux.uml",
		Setup: func(e *Env) error {
			if _, err := os.Stat(realUML); err != nil {
				return fmt.Errorf("linux.uml not installed (apt-get install user-mode-linux)")
			}
			tool, err := buildTCPTool(e.Dir)
			if err != nil {
				return err
			}
			e.Vars["tcptool"] = tool
			cli := strings.Join([]string{
				"ifconfig lo 127.0.0.1 up",
				"ifconfig eth0 10.77.9.2 netmask 255.255.255.0 up",
				"i=0",
				"until ping -c 1 -W 1 10.77.9.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done",
				"for r in 1 2 3; do",
				"  echo TX-START-$r",
				fmt.Sprintf("  /bin/tcptool send 10.77.9.1:5001 %d", mib),
				"  echo TX-DONE-$r",
				"done",
				"poweroff -f",
			}, "\n")
			img, err := busyboxImage(filepath.Join(e.Dir, "netimg"), cli, tool)
			if err != nil {
				return err
			}
			e.Vars["netimg"] = img
			return nil
		},
		Variants: []Variant{
			{Name: "ours", Run: run("ours")},
			{Name: "linux.uml", Run: run("real")},
		},
	})
}
