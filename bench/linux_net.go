package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// linux-net: TCP throughput from a guest's eth0=tuntap,TAP to a sink in the
// host side of the tap, our linux vs Debian's linux.uml on the same image.
// Everything runs in a network namespace created around each measurement
// (needs root); the guest sends 32 MiB three times with the static Go
// tcptool of switch-tcp, timed between its console markers.

// linuxNetClient is the guest's /init script (%d: tcpMiB).
const linuxNetClient = `ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.9.2 netmask 255.255.255.0 up
i=0
until ping -c 1 -W 1 10.77.9.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done
for r in 1 2 3; do
  echo TX-START-$r
  /bin/tcptool send 10.77.9.1:5001 %d
  echo TX-DONE-$r
done
poweroff -f`

// linuxNetSetup builds tcptool and the guest's image (netimg).
func linuxNetSetup(e *Env) error { return netSetup(e, "eth0") }

// netSetup builds tcptool and the image of a guest sending over dev.
func netSetup(e *Env, dev string) error {
	if _, err := os.Stat(realUML); err != nil {
		return fmt.Errorf("linux.uml not installed (apt-get install user-mode-linux)")
	}
	tool, err := buildTCPTool(e.Dir)
	if err != nil {
		return err
	}
	e.Vars["tcptool"] = tool
	script := strings.ReplaceAll(fmt.Sprintf(linuxNetClient, tcpMiB), "eth0", dev)
	img, err := busyboxImage(filepath.Join(e.Dir, dev+"img"), script, map[string]string{"bin/tcptool": tool})
	if err != nil {
		return err
	}
	e.Vars["netimg"] = img
	return nil
}

// tapTCP boots kernel kind ("ours", "real") on a copy of the image, in a
// new network namespace with the tap benchtap0 (10.77.9.1) and tcptool's
// sink on it, and reports the median rate of the guest's three transfers.
func tapTCP(e *Env, kind string) ([]Metric, error) {
	return withNetNS("umlkit-bench-lnet", func(ns string) ([]Metric, error) {
		if err := tuntapLink.add(ns); err != nil {
			return nil, err
		}
		stopSink, err := startSink(e, ns)
		if err != nil {
			return nil, err
		}
		defer stopSink()
		log, stop, err := bootWith(e, ns, kind, tuntapLink.arg)
		if err != nil {
			return nil, err
		}
		defer stop()
		if err := log.waitTransfers(kind, "console"); err != nil {
			return nil, err
		}
		return []Metric{{"guest TCP to host tap", median(log.rates(tcpMiB)), "MB/s"}}, nil
	})
}

// addBenchTap brings lo up in ns and adds the tap benchtap0, 10.77.9.1/24.
func addBenchTap(ns string) error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"tuntap", "add", "dev", "benchtap0", "mode", "tap"},
		{"addr", "add", "10.77.9.1/24", "dev", "benchtap0"},
		{"link", "set", "benchtap0", "up"},
	} {
		if err := ipn(ns, args...); err != nil {
			return err
		}
	}
	return nil
}

// bootWith boots kernel kind in ns on a fresh copy of the image netimg
// with the device dev; stop kills and reaps it.
func bootWith(e *Env, ns, kind, dev string) (log *markerLog, stop func(), err error) {
	return bootImage(e, ns, kind, e.Vars["netimg"], dev)
}

// bootImage boots kernel kind in ns ("" for the current one) on a fresh
// copy of img with the extra arguments args; stop kills and reaps it and
// removes the copy.
func bootImage(e *Env, ns, kind, img string, args ...string) (log *markerLog, stop func(), err error) {
	disk, done, err := freshCopyOf(img)
	if err != nil {
		return nil, nil, err
	}
	log = newMarkerLog()
	stopGuest, err := startGuest(ns, bootArgs(e, kind, disk, args...), os.TempDir(), log)
	if err != nil {
		done()
		return nil, nil, err
	}
	return log, func() { stopGuest(); done() }, nil
}

// startGuest starts the kernel command line argv in ns ("" for the
// current one) with TMPDIR=tmp, its console (stdin held open) into out;
// stop kills its process group and reaps it.
func startGuest(ns string, argv []string, tmp string, out io.Writer) (stop func(), err error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe() // held open: UML's console reads it
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return nil, err
	}
	return func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait(); stdin.Close() }, nil
}
