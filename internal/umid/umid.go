// Package umid claims a UML instance directory, <uml_dir><umid>/, the way
// UML does: a live instance (its pid file names a running process) is
// refused, a stale one is taken over silently, a missing umid gets a random
// six-character name; the pid file is written O_EXCL with "%d\n".
//
// Facts: shared/spec/mconsole.md §1.
package umid

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrInUse is returned when the umid belongs to a live instance.
var ErrInUse = errors.New("already in use")

// Dir is a claimed instance directory.
type Dir struct {
	UmlDir string // with trailing '/'
	Umid   string
	Path   string // UmlDir + Umid
}

// DefaultUmlDir returns $HOME/.uml/.
func DefaultUmlDir() (string, error) {
	home := os.Getenv("HOME")
	if home == "" {
		return "", errors.New("make_uml_dir: no value in environment for $HOME")
	}
	return home + "/.uml/", nil
}

// Normalize appends the '/' UML appends to uml_dir.
func Normalize(umlDir string) string {
	if !strings.HasSuffix(umlDir, "/") {
		umlDir += "/"
	}
	return umlDir
}

// Claim takes <umlDir><name>/ for pid. An empty name picks a random one. It
// returns ErrInUse (wrapped, with the UML message) when a live instance holds
// the name.
func Claim(umlDir, name string, pid int) (*Dir, error) {
	umlDir = Normalize(umlDir)
	if err := os.MkdirAll(umlDir, 0o777); err != nil {
		return nil, fmt.Errorf("make_uml_dir: %w", err)
	}
	if name == "" {
		for i := 0; i < 100; i++ {
			n := randomName()
			d, err := claim(umlDir, n, pid)
			if err == nil {
				return d, nil
			}
			if !errors.Is(err, ErrInUse) && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
		}
		return nil, errors.New("could not find a free random umid")
	}
	return claim(umlDir, name, pid)
}

func randomName() string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func claim(umlDir, name string, pid int) (*Dir, error) {
	path := umlDir + name
	if _, err := os.Lstat(path); err == nil {
		if owner, alive := Alive(path); alive {
			return nil, fmt.Errorf("umid \"%s\" is %w by pid %d", name, ErrInUse, owner)
		}
		if err := removeDir(path); err != nil {
			return nil, fmt.Errorf("remove stale umid dir %s: %w", path, err)
		}
	}
	if err := os.Mkdir(path, 0o777); err != nil {
		return nil, fmt.Errorf("create umid dir %s: %w", path, err)
	}
	f, err := os.OpenFile(filepath.Join(path, "pid"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create pid file: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", pid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeDir(path)
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	return &Dir{UmlDir: umlDir, Umid: name, Path: path}, nil
}

// Alive reads dir/pid and reports the pid and whether that process exists
// (kill(pid, 0) succeeds or fails with anything but ESRCH), as UML does.
// Unreadable, empty or garbage pid files count as not alive.
func Alive(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 9 {
		s = s[:9]
	}
	pid, err := strconv.ParseInt(s, 0, 32)
	if err != nil || pid <= 0 {
		return 0, false
	}
	err = syscall.Kill(int(pid), 0)
	return int(pid), err == nil || !errors.Is(err, syscall.ESRCH)
}

// Swept is a stale instance directory Sweep found.
type Swept struct {
	Path string
	Pid  int   // the dead process its pid file names
	Err  error // nil: removed
}

// Sweep removes the instance directories in umlDir whose pid file names a
// process that is gone (a machine killed with SIGKILL leaves its own), as
// a claim of each would. Directories without a readable pid number are
// not instance directories of a machine that ran, and are left alone.
func Sweep(umlDir string) []Swept {
	umlDir = Normalize(umlDir)
	ents, err := os.ReadDir(umlDir)
	if err != nil {
		return nil
	}
	var out []Swept
	for _, e := range ents {
		path := umlDir + e.Name()
		if st, err := os.Lstat(path); err != nil || !st.IsDir() {
			continue
		}
		pid, alive := Alive(path)
		if pid == 0 || alive {
			continue
		}
		s := Swept{Path: path, Pid: pid}
		if err := removeDir(path); err != nil {
			s.Err = err
		}
		out = append(out, s)
	}
	return out
}

// removeDir unlinks every file in dir and dir itself (no recursion, as UML).
func removeDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return os.Remove(dir)
}

// Release removes the instance directory and its files.
func (d *Dir) Release() error { return removeDir(d.Path) }

// File returns the path of a file in the instance directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }
