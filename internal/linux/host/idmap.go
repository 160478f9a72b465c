package host

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// subIDRange is one /etc/subuid or /etc/subgid entry.
type subIDRange struct{ start, count int }

// subIDs returns the first range for the user (by name or numeric id) in
// file, or ok=false.
func subIDs(file, name string, id int) (subIDRange, bool) {
	f, err := os.Open(file)
	if err != nil {
		return subIDRange{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.Atoi(parts[1])
		count, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || count < 1 {
			continue
		}
		return subIDRange{start, count}, true
	}
	return subIDRange{}, false
}

// idMapper maps guest uids/gids 1..N onto the user's subordinate ranges
// through newuidmap/newgidmap (guest root stays the user).
type idMapper struct {
	uid, gid       int
	subuid, subgid subIDRange
	newuidmap      string
	newgidmap      string
}

// subordinateMapper returns a mapper, or nil and the reason a single
// mapping is used instead.
func subordinateMapper() (*idMapper, string) {
	uid, gid := os.Geteuid(), os.Getegid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	m := &idMapper{uid: uid, gid: gid}
	var err error
	if m.newuidmap, err = exec.LookPath("newuidmap"); err != nil {
		return nil, "newuidmap not installed (apt-get install uidmap)"
	}
	if m.newgidmap, err = exec.LookPath("newgidmap"); err != nil {
		return nil, "newgidmap not installed (apt-get install uidmap)"
	}
	var ok bool
	if m.subuid, ok = subIDs("/etc/subuid", name, uid); !ok {
		return nil, fmt.Sprintf("no /etc/subuid entry for %s", name)
	}
	if m.subgid, ok = subIDs("/etc/subgid", name, uid); !ok {
		return nil, fmt.Sprintf("no /etc/subgid entry for %s", name)
	}
	return m, ""
}

// size is the number of guest ids beyond root that get mapped.
func (r subIDRange) size() int { return min(r.count, 65535) }

// apply writes pid's maps: 0 → the user, 1..N → the subordinate range.
func (m *idMapper) apply(pid int) error {
	p := strconv.Itoa(pid)
	if out, err := exec.Command(m.newuidmap, p, "0", strconv.Itoa(m.uid), "1", "1", strconv.Itoa(m.subuid.start), strconv.Itoa(m.subuid.size())).CombinedOutput(); err != nil {
		return fmt.Errorf("newuidmap: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command(m.newgidmap, p, "0", strconv.Itoa(m.gid), "1", "1", strconv.Itoa(m.subgid.start), strconv.Itoa(m.subgid.size())).CombinedOutput(); err != nil {
		return fmt.Errorf("newgidmap: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (m *idMapper) String() string {
	return fmt.Sprintf("uid map: guest 0 = uid %d, guest 1-%d = uids %d-%d (newuidmap)", m.uid, m.subuid.size(), m.subuid.start, m.subuid.start+m.subuid.size()-1)
}
