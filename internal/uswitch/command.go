//go:build linux

package uswitch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// daemonEnv marks the re-executed background child of -daemon; its value is
// the number of the pipe descriptor it reports readiness on.
const daemonEnv = "UMLKIT_SWITCH_DAEMON_FD"

// Stdio are the process's standard streams.
type Stdio struct {
	In       *os.File
	Out, Err io.Writer
}

// Command runs the switch as the uml_switch binary does: -daemon (re-exec in
// the background once the sockets are bound; stdio kept, cwd /), -pidfile,
// -logfile, signal handling (SIGINT/SIGTERM clean up and return
// *SignalError; SIGUSR1 logs counters) and the stdin rule of the real one:
// stdin is watched for EOF only when it is a terminal.
func Command(ctx context.Context, o Options, io Stdio) error {
	if o.Daemon && os.Getenv(daemonEnv) == "" {
		return daemonize(io)
	}
	var ready *os.File
	if v := os.Getenv(daemonEnv); v != "" {
		os.Unsetenv(daemonEnv)
		if n, err := strconv.Atoi(v); err == nil {
			ready = os.NewFile(uintptr(n), "daemon-ready")
		}
	}
	cfg := o.Config
	cfg.Stdout, cfg.Stderr = io.Out, io.Err
	cfg.CtlFile = activatedSocket()
	if o.LogFile != "" {
		f, err := os.OpenFile(o.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		defer f.Close()
		cfg.Stdout, cfg.Stderr = f, f
	}
	if !o.Daemon && ready == nil && io.In != nil && isTTY(io.In) {
		cfg.Stdin = io.In
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	cfg.Signals = sigs
	s, err := Listen(cfg)
	if err != nil {
		return err
	}
	if o.PIDFile != "" {
		if abs, err := filepath.Abs(o.PIDFile); err == nil {
			o.PIDFile = abs
		}
		if err := os.WriteFile(o.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			s.Close()
			return fmt.Errorf("write pid file: %w", err)
		}
		defer os.Remove(o.PIDFile)
	}
	if ready != nil {
		os.Chdir("/")
		ready.Write([]byte("ok\n"))
		ready.Close()
	}
	err = s.Run(context.WithoutCancel(ctx))
	s.Close()
	return err
}

func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// daemonize re-executes this binary in a new session with the same
// arguments and waits until it reports its sockets bound (exit 0) or exits
// having printed its error (exit 1).
func daemonize(stdio Stdio) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("daemon: %w", err)
	}
	w.Close()
	buf := make([]byte, 3)
	n, _ := io.ReadFull(r, buf)
	r.Close()
	if n == 3 && string(buf) == "ok\n" {
		cmd.Process.Release()
		return nil
	}
	cmd.Wait()
	return &ReportedError{Err: errors.New("daemon failed to start")}
}

// activatedSocket returns fd 3 when systemd passed a socket to this process
// (LISTEN_PID is our pid, LISTEN_FDS >= 1) and unsets the variables so
// children do not inherit them.
func activatedSocket() *os.File {
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if pid != os.Getpid() || n < 1 {
		return nil
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	return os.NewFile(3, "LISTEN_FDS")
}
