// Package childrole is the registry of hidden re-exec roles: a binary
// re-executes /proc/self/exe with the role name in an environment variable,
// and Dispatch, called first thing in main (and in TestMain of packages that
// exercise the real child path), runs the registered function instead of the
// normal program. Every fd a role needs is announced by name (see Files).
package childrole

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// EnvRole names the role a re-exec'd process plays.
const EnvRole = "_UMLKIT_ROLE"

// EnvFDs announces donated fds: "name=fd,name=fd".
const EnvFDs = "_UMLKIT_FDS"

var roles = map[string]func() int{}

// Register adds a role. It is meant for init functions.
func Register(name string, f func() int) {
	if _, dup := roles[name]; dup {
		panic("childrole: duplicate role " + name)
	}
	roles[name] = f
}

// Dispatch runs the role named in the environment, if any, and exits with
// its status. It returns only when the process is not a child role.
func Dispatch() {
	name := os.Getenv(EnvRole)
	if name == "" {
		return
	}
	f, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "umlkit: unknown child role %q\n", name)
		os.Exit(127)
	}
	os.Unsetenv(EnvRole)
	os.Exit(f())
}

// Files returns the donated fds named in the environment as files.
func Files() (map[string]*os.File, error) {
	out := map[string]*os.File{}
	spec := os.Getenv(EnvFDs)
	os.Unsetenv(EnvFDs)
	if spec == "" {
		return out, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		name, num, ok := strings.Cut(kv, "=")
		fd, err := strconv.Atoi(num)
		if !ok || err != nil || fd < 3 {
			return nil, fmt.Errorf("bad %s entry %q", EnvFDs, kv)
		}
		out[name] = os.NewFile(uintptr(fd), name)
	}
	return out, nil
}

// Donate builds the ExtraFiles slice and the EnvFDs value for files; the
// first donated file becomes fd 3 in the child.
func Donate(files map[string]*os.File, order []string) ([]*os.File, string) {
	var extra []*os.File
	var parts []string
	for _, name := range order {
		f, ok := files[name]
		if !ok || f == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%d", name, 3+len(extra)))
		extra = append(extra, f)
	}
	return extra, EnvFDs + "=" + strings.Join(parts, ",")
}
