package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// switch-tcp: TCP throughput between two real linux.uml guests
// (eth0=daemon) attached to ours, Debian's uml_switch and vde_switch; the
// client sends 32 MiB three times per boot with a small static Go tool
// (256 KiB writes, built at setup; busybox nc moves 1 KiB per syscall and
// would measure the guest's syscall cost instead), the host times each
// transfer between the guest's console markers.

// tcpMiB is the size of each of a guest's three TCP transfers (switch-tcp,
// linux-net).
const tcpMiB = 32

// switchTCPServer is the /init script of the server guest.
const switchTCPServer = `ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.1 netmask 255.255.255.0 up
echo SRV-READY
exec /bin/tcptool sink 5001`

// switchTCPClient is the /init script of the client guest (%d: tcpMiB).
const switchTCPClient = `ifconfig lo 127.0.0.1 up
ifconfig eth0 10.77.0.2 netmask 255.255.255.0 up
i=0
until ping -c 1 -W 1 10.77.0.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done
sleep 1
for r in 1 2 3; do
  echo TX-START-$r
  /bin/tcptool send 10.77.0.1:5001 %d
  echo TX-DONE-$r
done
poweroff -f`

// switchTCPSetup builds tcptool and the two guests' images (srvimg, cliimg).
func switchTCPSetup(e *Env) error {
	if _, err := exec.LookPath("linux.uml"); err != nil {
		return fmt.Errorf("linux.uml not installed (apt-get install user-mode-linux)")
	}
	tool, err := buildTCPTool(e.Dir)
	if err != nil {
		return err
	}
	for _, im := range []struct{ name, script string }{
		{"srvimg", switchTCPServer},
		{"cliimg", fmt.Sprintf(switchTCPClient, tcpMiB)},
	} {
		img, err := busyboxImage(filepath.Join(e.Dir, im.name), im.script, map[string]string{"bin/tcptool": tool})
		if err != nil {
			return err
		}
		e.Vars[im.name] = img
	}
	return nil
}

// switchTCP measures the guests' TCP throughput over the switch of kind.
func switchTCP(e *Env, kind string) ([]Metric, error) {
	return guestTCP(e, kind, e.Vars["srvimg"], e.Vars["cliimg"], tcpMiB)
}

// busyboxImage makes an ext4 image whose /init runs script, with the host
// files files (image path → host path, symlinks followed) copied in.
func busyboxImage(dir, script string, files map[string]string) (string, error) {
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("static busybox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		return "", err
	}
	for in, host := range files {
		b, err := os.ReadFile(host)
		if err != nil {
			return "", err
		}
		p := filepath.Join(root, in)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			return "", err
		}
	}
	list, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return "", err
	}
	for _, app := range strings.Fields(string(list)) {
		if app == "bin/busybox" {
			continue
		}
		p := filepath.Join(root, app)
		rel, _ := filepath.Rel(filepath.Dir(p), filepath.Join(root, "bin/busybox"))
		os.Symlink(rel, p)
	}
	init := "#!/bin/sh\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\n" +
		"mount -t devtmpfs devtmpfs /dev\n[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(init), 0o755); err != nil {
		return "", err
	}
	img := filepath.Join(dir, "root.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "64M").CombinedOutput(); err != nil {
		return "", fmt.Errorf("mke2fs: %v: %s", err, out)
	}
	return img, os.RemoveAll(root)
}

// markerLog records when each console line containing a marker arrived.
type markerLog struct {
	mu    sync.Mutex // guards buf and times
	buf   bytes.Buffer
	times map[string]time.Time
}

func newMarkerLog() *markerLog { return &markerLog{times: map[string]time.Time{}} }

var markerRE = regexp.MustCompile(`(TX-START-\d|TX-DONE-\d|SRV-READY)`)

func (m *markerLog) Write(p []byte) (int, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf.Write(p)
	for _, k := range markerRE.FindAllString(m.buf.String(), -1) {
		if _, ok := m.times[k]; !ok {
			m.times[k] = now
		}
	}
	return len(p), nil
}

func (m *markerLog) get(k string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.times[k]
	return t, ok
}

// waitTransfers waits (at most 120 s) for the end of the third transfer.
func (m *markerLog) waitTransfers(kind, console string) error {
	return m.waitFor("TX-DONE-3", 120*time.Second, kind, console)
}

// waitFor waits (at most timeout) for marker in the output; the error names
// the guest's console and shows it.
func (m *markerLog) waitFor(marker string, timeout time.Duration, kind, console string) error {
	deadline := time.Now().Add(timeout)
	for {
		if m.contains(marker) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %v; %s:\n%s", kind, marker, timeout, console, m.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *markerLog) contains(s string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Contains(m.buf.Bytes(), []byte(s))
}

// String returns the output so far.
func (m *markerLog) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.String()
}

// rates returns the MB/s of the three transfers of mib MiB each.
func (m *markerLog) rates(mib int) []float64 {
	var rates []float64
	for r := 1; r <= 3; r++ {
		t0, _ := m.get(fmt.Sprintf("TX-START-%d", r))
		t1, _ := m.get(fmt.Sprintf("TX-DONE-%d", r))
		rates = append(rates, float64(mib)*1048576/t1.Sub(t0).Seconds()/1e6)
	}
	return rates
}

// bootGuest boots linux.uml on img with the umid and eth device given, in
// a uml_dir of its own; stop kills and reaps it.
func bootGuest(e *Env, img, umid, eth string, out *markerLog) (stop func(), err error) {
	umlDir, err := os.MkdirTemp(e.Dir, "uml-")
	if err != nil {
		return nil, err
	}
	return startGuest("", []string{"linux.uml", "ubd0=" + img, "mem=128M", "con0=fd:0,fd:1", "con=null", "ssl=null",
		"init=/init", "uml_dir=" + umlDir, "umid=" + umid, eth}, umlDir, out)
}

func guestTCP(e *Env, kind, srvImg, cliImg string, mib int) ([]Metric, error) {
	s, err := startSwitchProc(e, kind)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	srvLog, cliLog := newMarkerLog(), newMarkerLog()
	stopSrv, err := bootGuest(e, srvImg, "bsrv", "eth0=daemon,fe:fd:0a:4d:00:01,unix,"+s.ctl, srvLog)
	if err != nil {
		return nil, err
	}
	defer stopSrv()
	stopCli, err := bootGuest(e, cliImg, "bcli", "eth0=daemon,fe:fd:0a:4d:00:02,unix,"+s.ctl, cliLog)
	if err != nil {
		return nil, err
	}
	defer stopCli()
	if err := cliLog.waitTransfers(kind, "client console"); err != nil {
		return nil, err
	}
	return []Metric{{"guest TCP", median(cliLog.rates(mib)), "MB/s"}}, nil
}

const tcpToolSource = `package main

import (
	"io"
	"net"
	"os"
	"strconv"
)

func main() {
	switch os.Args[1] {
	case "sink":
		ln, err := net.Listen("tcp", ":"+os.Args[2])
		if err != nil {
			panic(err)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				continue
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	case "send":
		mib, _ := strconv.Atoi(os.Args[3])
		c, err := net.Dial("tcp", os.Args[2])
		if err != nil {
			panic(err)
		}
		buf := make([]byte, 256<<10)
		for i := 0; i < mib*4; i++ {
			if _, err := c.Write(buf); err != nil {
				panic(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
	}
}
`

// buildTCPTool compiles the guest's static TCP sender/sink.
func buildTCPTool(dir string) (string, error) {
	src := filepath.Join(dir, "tcptool")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module tcptool\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(tcpToolSource), 0o644)
	out := filepath.Join(dir, "tcptool.bin")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guest tcptool: %v: %s", err, b)
	}
	return out, nil
}
