package cgroup

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/umlkit/umlkit/internal/testutil"
)

// A fake systemd manager on a private dbus-daemon: StartTransientUnit as
// org.freedesktop.systemd1 answers with a job and then sends JobRemoved
// with the result the test chose. The real manager is exercised by the
// e2e tests (tests/e2e/linux_cgroup_test.go).

type fakeManager struct {
	conn   *dbus.Conn
	result string // the job's result, or "" to refuse the call

	mu    sync.Mutex
	calls []fakeCall
}

type fakeCall struct {
	name, mode string
	props      map[string]dbus.Variant
}

type prop struct {
	Name  string
	Value dbus.Variant
}

type auxUnit struct {
	Name  string
	Props []prop
}

func (f *fakeManager) StartTransientUnit(name, mode string, props []prop, aux []auxUnit) (dbus.ObjectPath, *dbus.Error) {
	c := fakeCall{name: name, mode: mode, props: map[string]dbus.Variant{}}
	for _, p := range props {
		c.props[p.Name] = p.Value
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.result == "" {
		return "", dbus.NewError("org.freedesktop.systemd1.UnitExists", []any{"Unit " + name + " already exists."})
	}
	job := dbus.ObjectPath("/org/freedesktop/systemd1/job/7")
	go func() {
		time.Sleep(10 * time.Millisecond) // after the reply, as systemd does
		f.conn.Emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", uint32(7), job, name, f.result)
	}()
	return job, nil
}

// startBus runs a private dbus-daemon and a fake manager on it; it
// returns the bus socket.
func startBus(t *testing.T, result string) (string, *fakeManager) {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		testutil.Skip(t, "dbus-daemon not installed (apt-get install dbus-daemon)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	cfg := filepath.Join(dir, "bus.conf")
	os.WriteFile(cfg, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	cmd := exec.Command(daemon, "--config-file="+cfg, "--nofork", "--nosyslog")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var conn *dbus.Conn
	if err := testutil.WaitFor(10*time.Second, func() bool { // the socket exists before the daemon listens
		conn, err = dbus.Connect("unix:path=" + sock)
		return err == nil
	}); err != nil {
		t.Fatalf("dbus-daemon does not answer on %s: %v", sock, err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeManager{conn: conn, result: result}
	if err := conn.Export(f, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName = %v, %v", r, err)
	}
	return sock, f
}

func TestStartScopeFakeManager(t *testing.T) {
	for _, tt := range []struct {
		name, result string
		wantErr      string
	}{
		{name: "done", result: "done"},
		{name: "failed", result: "failed", wantErr: "job failed"},
		{name: "refused", result: "", wantErr: "already exists"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock, f := startBus(t, tt.result)
			env := map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=" + sock, "XDG_RUNTIME_DIR": t.TempDir()}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			via, err := StartScope(ctx, "uml-t-1.scope", "User-Mode Linux (umlkit) t", 4242, func(k string) string { return env[k] })
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("StartScope = %v", err)
			case tt.wantErr == "" && via != sock:
				t.Errorf("StartScope used %q; want %q", via, sock)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("StartScope = %v; want an error with %q", err, tt.wantErr)
			case tt.wantErr != "" && !strings.HasPrefix(err.Error(), "systemd user manager at "+sock+": "):
				t.Errorf("StartScope = %q; want it to name the manager it asked", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.calls) != 1 {
				t.Fatalf("%d calls of StartTransientUnit; want 1 (a refusal is not asked elsewhere)", len(f.calls))
			}
			c := f.calls[0]
			if c.name != "uml-t-1.scope" || c.mode != "fail" {
				t.Errorf("StartTransientUnit(%q, %q)", c.name, c.mode)
			}
			want := map[string]any{"Delegate": true, "PIDs": []uint32{4242}, "CollectMode": "inactive-or-failed",
				"Description": "User-Mode Linux (umlkit) t"}
			for k, v := range want {
				got, ok := c.props[k]
				if !ok {
					t.Errorf("property %s missing", k)
					continue
				}
				if g, w := got.String(), dbus.MakeVariant(v).String(); g != w {
					t.Errorf("property %s = %s; want %s", k, g, w)
				}
			}
		})
	}
}

// TestStartScopeNotAnswering: a socket of ours where nothing speaks D-Bus
// (a hung manager) ends with the context, not never.
func TestStartScopeNotAnswering(t *testing.T) {
	rt := t.TempDir()
	os.Mkdir(filepath.Join(rt, "systemd"), 0o700)
	l, err := listenUnix(filepath.Join(rt, "bus"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = StartScope(ctx, "uml-t-1.scope", "t", 1, func(k string) string { return map[string]string{"XDG_RUNTIME_DIR": rt}[k] })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("StartScope = %v; want no answer: context deadline exceeded", err)
	}
}

// listenUnix listens on path and holds every connection without a word.
func listenUnix(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return l, nil
}
