package mcclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Candidate is one socket path tried for a name, with the stat error.
type Candidate struct {
	Path string
	Err  error // nil if it exists
}

// Lookup says where to look for a machine's socket.
type Lookup struct {
	// Home is $HOME ("" = unset: ~/.uml is skipped, as uml_mconsole does).
	Home string
	// UMLDir is an extra uml_dir tried first ("" = none).
	UMLDir string
}

// DefaultLookup reads $HOME and $UML_DIR.
func DefaultLookup() Lookup {
	return Lookup{Home: os.Getenv("HOME"), UMLDir: os.Getenv("UML_DIR")}
}

// Candidates returns the paths tried for name, in order: <uml_dir>/NAME/
// mconsole (our addition), $HOME/.uml/NAME/mconsole (unless NAME starts
// with $HOME/.uml), /tmp/uml/NAME/mconsole (unless NAME starts with
// /tmp/uml/), then NAME itself.
func (l Lookup) Candidates(name string) []string {
	var out []string
	if l.UMLDir != "" {
		out = append(out, filepath.Join(l.UMLDir, name, "mconsole"))
	}
	if l.Home != "" && !strings.HasPrefix(name, l.Home+"/.uml") {
		out = append(out, l.Home+"/.uml/"+name+"/mconsole")
	}
	if !strings.HasPrefix(name, "/tmp/uml/") {
		out = append(out, "/tmp/uml/"+name+"/mconsole")
	}
	return append(out, name)
}

// Resolve returns the first candidate for name that exists (any file type),
// and every candidate tried up to it with its stat error (uml_mconsole
// prints a warning for each failed one; callers may print them only when
// nothing resolves). Nothing found: ErrNotFound.
func (l Lookup) Resolve(name string) (string, []Candidate, error) {
	var tried []Candidate
	for _, p := range l.Candidates(name) {
		_, err := os.Stat(p)
		tried = append(tried, Candidate{Path: p, Err: err})
		if err == nil {
			return p, tried, nil
		}
	}
	return "", tried, ErrNotFound
}

// Instance is a machine directory found under a uml dir.
type Instance struct {
	Umid   string
	Dir    string // <uml_dir>/<umid>
	Socket string // "" if there is no mconsole socket
	Pid    int    // 0 if no readable pid file
	Alive  bool   // the pid names a live process (no pid: the socket answers)
}

// State is "alive" or "stale".
func (i Instance) State() string {
	if i.Alive {
		return "alive"
	}
	return "stale"
}

// Dirs returns the uml dirs to scan: UMLDir, $HOME/.uml and /tmp/uml,
// without duplicates.
func (l Lookup) Dirs() []string {
	var dirs []string
	seen := map[string]bool{}
	for _, d := range []string{l.UMLDir, homeUML(l.Home), "/tmp/uml"} {
		if d == "" {
			continue
		}
		c := filepath.Clean(d)
		key := c
		if r, err := filepath.EvalSymlinks(c); err == nil {
			key = r
		}
		if !seen[key] {
			seen[key] = true
			dirs = append(dirs, c)
		}
	}
	return dirs
}

func homeUML(home string) string {
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".uml")
}

// List returns the machine directories (those holding a pid file or an
// mconsole socket) under the uml dirs, sorted by dir then umid. Missing uml
// dirs are skipped.
func (l Lookup) List() ([]Instance, error) {
	var out []Instance
	for _, d := range l.Dirs() {
		ents, err := os.ReadDir(d)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		var found []Instance
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			in := Instance{Umid: e.Name(), Dir: filepath.Join(d, e.Name())}
			sock := filepath.Join(in.Dir, "mconsole")
			if st, err := os.Lstat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
				in.Socket = sock
			}
			pid, perr := ReadPid(filepath.Join(in.Dir, "pid"))
			switch {
			case perr == nil:
				in.Pid = pid
				in.Alive = Alive(pid)
			case in.Socket != "":
				in.Alive = socketAnswers(in.Socket)
			}
			if in.Socket == "" && perr != nil {
				continue
			}
			found = append(found, in)
		}
		sort.Slice(found, func(i, j int) bool { return found[i].Umid < found[j].Umid })
		out = append(out, found...)
	}
	return out, nil
}

// socketAnswers reports whether a process is bound to the datagram socket
// at path (connect succeeds; a stale socket file refuses).
func socketAnswers(path string) bool {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: path}) == nil
}

// DialName resolves a umid or socket path with l and dials it.
func DialName(name string, l Lookup) (*Client, error) {
	path, _, err := l.Resolve(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", err, name)
	}
	return Dial(path)
}
