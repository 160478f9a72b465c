package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A fake cgroup tree in a temporary directory: a cgroup is a directory
// with regular files cgroup.procs and cgroup.events; rmdir removes them
// with the directory and, like the kernel's, fails while a child exists.

type fakeCg struct {
	procs     string // cgroup.procs
	populated bool   // cgroup.events (v2)
}

// mkTree makes the cgroups of tree (relative paths) below root.
func mkTree(t *testing.T, root string, tree map[string]fakeCg, v2 bool) {
	t.Helper()
	for rel, cg := range tree {
		d := filepath.Join(root, rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(cg.procs), 0o644); err != nil {
			t.Fatal(err)
		}
		if !v2 && rel == "" { // the limit of mem=
			if err := os.WriteFile(filepath.Join(d, "memory.limit_in_bytes"), []byte("268435456\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if v2 {
			ev := "populated 0\nfrozen 0\n"
			if cg.populated {
				ev = "populated 1\nfrozen 0\n"
			}
			if err := os.WriteFile(filepath.Join(d, "cgroup.events"), []byte(ev), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func fakeRmdir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return &os.PathError{Op: "rmdir", Path: dir, Err: os.ErrExist}
		}
	}
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return os.Remove(dir)
}

// fakeKill empties every cgroup below dir, as SIGKILL would.
func fakeKill(killed *[]string) func(string) error {
	return func(dir string) error {
		*killed = append(*killed, dir)
		return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.WriteFile(filepath.Join(p, "cgroup.procs"), nil, 0o644)
				os.WriteFile(filepath.Join(p, "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644)
			}
			return nil
		})
	}
}

func age(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(dir, when, when); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestSweepOne(t *testing.T) {
	type tc struct {
		name    string
		tree    map[string]fakeCg // below the machine cgroup "umlkit-m" ("" is itself)
		v2      bool
		young   bool
		kill    bool
		uid     int // 0: ours
		want    Verdict
		killed  bool
		removed bool
	}
	dead := map[string]fakeCg{"": {}, "guest": {}, "guest/init.scope": {}, "guest/system.slice": {}, "guest/system.slice/x.service": {}}
	for _, tt := range []tc{
		{name: "dead machine: removed depth first", tree: dead, v2: true, want: Removed, removed: true},
		{name: "young: a machine may be starting", tree: dead, v2: true, young: true, want: Young},
		{name: "another user's", tree: dead, v2: true, uid: os.Getuid() + 1, want: NotOurs},
		{name: "live: linux in it", v2: true, want: Live,
			tree: map[string]fakeCg{"": {procs: "100\n101\n", populated: true}, "guest": {procs: "102\n", populated: true}}},
		{name: "live: v2-only memory cgroup nesting the freezer's", v2: true, want: Live,
			tree: map[string]fakeCg{"": {populated: true}, "umlkit-m": {procs: "100\n", populated: true}, "umlkit-m/guest": {}}},
		{name: "dead with guest leftovers, no kill", v2: true, want: Leftovers,
			tree: map[string]fakeCg{"": {populated: true}, "guest": {populated: true}, "guest/init.scope": {procs: "200\n", populated: true}}},
		{name: "dead with guest leftovers, kill", v2: true, kill: true, want: Removed, killed: true, removed: true,
			tree: map[string]fakeCg{"": {populated: true}, "guest": {populated: true}, "guest/init.scope": {procs: "200\n", populated: true}}},
		{name: "v1: no process anywhere", v2: false, want: Removed, removed: true,
			tree: map[string]fakeCg{"": {}, "init.scope": {}, "system.slice": {}}},
		{name: "v1: a process below it", v2: false, kill: true, want: Live,
			tree: map[string]fakeCg{"": {}, "init.scope": {procs: "300\n"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			m := filepath.Join(root, "umlkit-m")
			mkTree(t, m, tt.tree, tt.v2)
			if !tt.young {
				age(t, m, time.Hour)
			}
			var killed []string
			uid := os.Getuid()
			if tt.uid != 0 {
				uid = tt.uid
			}
			s := &Sweeper{UID: uid, MinAge: MinAge, Kill: tt.kill, rmdir: fakeRmdir, kill: fakeKill(&killed)}
			r := s.One(m, tt.v2)
			if r.Verdict != tt.want || r.Killed != tt.killed {
				t.Errorf("One = %v (killed %v, err %v); want %v (killed %v)", r.Verdict, r.Killed, r.Err, tt.want, tt.killed)
			}
			if exists(m) == tt.removed {
				t.Errorf("%s exists = %v after %v", m, exists(m), r.Verdict)
			}
			if tt.killed && (len(killed) != 1 || killed[0] != filepath.Join(m, "guest")) {
				t.Errorf("killed %q; want the guest cgroup only", killed)
			}
			if !tt.killed && len(killed) > 0 {
				t.Errorf("killed %q; want nothing killed", killed)
			}
		})
	}
}

// TestSweepShape: a cgroup named like a machine's but not shaped like one
// (no guest/ child on v2, no memory limit on v1) is someone else's.
func TestSweepShape(t *testing.T) {
	root := t.TempDir()
	for _, v2 := range []bool{true, false} {
		m := filepath.Join(root, fmt.Sprintf("umlkit-e2e-%v", v2))
		mkTree(t, m, map[string]fakeCg{"": {}, "sub": {}}, v2)
		if !v2 {
			os.WriteFile(filepath.Join(m, "memory.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644)
		}
		age(t, m, time.Hour)
		s := &Sweeper{UID: os.Getuid(), MinAge: MinAge, Kill: true, rmdir: fakeRmdir}
		if r := s.One(m, v2); r.Verdict != NotOurs || !exists(m) {
			t.Errorf("v2=%v: One = %v; want NotOurs, kept", v2, r.Verdict)
		}
	}
}

// TestSweepUnreadable: a cgroup.procs that cannot be read counts as live.
func TestSweepUnreadable(t *testing.T) {
	root := t.TempDir()
	m := filepath.Join(root, "umlkit-m")
	mkTree(t, m, map[string]fakeCg{"": {}, "guest": {}}, true)
	os.Remove(filepath.Join(m, "cgroup.procs"))
	age(t, m, time.Hour)
	s := &Sweeper{UID: os.Getuid(), MinAge: MinAge, rmdir: fakeRmdir}
	if r := s.One(m, true); r.Verdict != Live || !exists(m) {
		t.Errorf("One = %v; want Live, kept", r.Verdict)
	}
}

// TestSweepChildrenAndTree: Children looks at machine cgroups beside
// linux's only; Tree finds them anywhere but never inside a machine
// cgroup (a guest may run its own linux there).
func TestSweepChildrenAndTree(t *testing.T) {
	root := t.TempDir()
	mkTree(t, root, map[string]fakeCg{
		"":                             {populated: true},
		"umlkit-dead":                  {},
		"umlkit-dead/guest":            {},
		"umlkit-live":                  {procs: "1\n", populated: true},
		"umlkit-live/guest":            {procs: "2\n", populated: true},
		"umlkit-live/guest/umlkit-in":  {},
		"user.slice":                   {populated: true},
		"user.slice/umlkit-deep":       {},
		"user.slice/umlkit-deep/guest": {},
		"system.slice":                 {},
		"e2e-umlkit-x":                 {},
	}, true)
	for _, d := range []string{"umlkit-dead", "umlkit-live", "umlkit-live/guest/umlkit-in", "user.slice/umlkit-deep", "e2e-umlkit-x"} {
		age(t, filepath.Join(root, d), time.Hour)
	}
	s := &Sweeper{UID: os.Getuid(), MinAge: MinAge, rmdir: fakeRmdir}
	got := map[string]Verdict{}
	for _, r := range s.Children(root, true) {
		got[strings.TrimPrefix(r.Path, root+"/")] = r.Verdict
	}
	want := map[string]Verdict{"umlkit-dead": Removed, "umlkit-live": Live}
	if len(got) != len(want) || got["umlkit-dead"] != Removed || got["umlkit-live"] != Live {
		t.Errorf("Children = %v; want %v", got, want)
	}
	if !exists(filepath.Join(root, "user.slice/umlkit-deep")) {
		t.Errorf("Children removed a cgroup below a sibling")
	}
	got = map[string]Verdict{}
	for _, r := range s.Tree(root, true) {
		got[strings.TrimPrefix(r.Path, root+"/")] = r.Verdict
	}
	if len(got) != 2 || got["user.slice/umlkit-deep"] != Removed || got["umlkit-live"] != Live {
		t.Errorf("Tree = %v; want user.slice/umlkit-deep removed, umlkit-live live", got)
	}
	for _, d := range []string{"umlkit-live/guest/umlkit-in", "e2e-umlkit-x", "system.slice"} {
		if !exists(filepath.Join(root, d)) {
			t.Errorf("%s was removed", d)
		}
	}
}

func TestParseMembership(t *testing.T) {
	const hybrid = "9:name=systemd:/\n4:memory:/process_api/83fb\n1:cpu,cpuacct:/a\n0::/user.slice/session-2.scope\n"
	m, err := ParseMembership(hybrid)
	if err != nil {
		t.Fatal(err)
	}
	if m.V2 != "/user.slice/session-2.scope" || m.V1["memory"] != "/process_api/83fb" || m.V1["name=systemd"] != "/" ||
		m.V1["cpu"] != "/a" || m.V1["cpuacct"] != "/a" {
		t.Errorf("ParseMembership = %+v", m)
	}
	for _, bad := range []string{"0:/x\n", "x::/\n", "0::relative\n", "garbage"} {
		if _, err := ParseMembership(bad); err == nil {
			t.Errorf("ParseMembership(%q) succeeded", bad)
		}
	}
	if m, err := ParseMembership("0::/a:b\n"); err != nil || m.V2 != "/a:b" {
		t.Errorf("a ':' in a path: %+v, %v", m, err)
	}
}

func FuzzParseMembership(f *testing.F) {
	for _, s := range []string{"0::/\n", "9:name=systemd:/\n4:memory:/x\n0::/y\n", "1:cpu,cpuacct:/a:b\n", "0::/a (deleted)\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMembership(s)
		if err != nil {
			return
		}
		if m.V2 != "" && !strings.HasPrefix(m.V2, "/") {
			t.Errorf("V2 %q is not absolute", m.V2)
		}
		for c, p := range m.V1 {
			if c == "" || !strings.HasPrefix(p, "/") {
				t.Errorf("V1[%q] = %q", c, p)
			}
		}
		// Formatting what was parsed and parsing it again gives the same.
		var b strings.Builder
		if m.V2 != "" {
			b.WriteString("0::" + m.V2 + "\n")
		}
		for c, p := range m.V1 {
			b.WriteString("1:" + c + ":" + p + "\n")
		}
		m2, err := ParseMembership(b.String())
		if err != nil || m2.V2 != m.V2 || len(m2.V1) != len(m.V1) {
			t.Errorf("round trip of %+v = %+v, %v", m, m2, err)
		}
		for c, p := range m.V1 {
			if m2.V1[c] != p {
				t.Errorf("round trip: V1[%q] = %q; want %q", c, m2.V1[c], p)
			}
		}
	})
}

// TestSweepOwnerMark: a machine cgroup marked by a live linux is live even
// when empty; one marked by a linux that is gone is dead even with
// processes in it (a guest-mount fuse2fs left in the machine's own
// cgroup): they are killed where Kill allows, and it goes.
func TestSweepOwnerMark(t *testing.T) {
	root := t.TempDir()
	probe := filepath.Join(root, "probe")
	os.Mkdir(probe, 0o755)
	if err := MarkOwner(probe); err != nil {
		t.Skipf("no user xattrs on %s: %v", root, err)
	}
	if alive, known := OwnerAlive(probe); !alive || !known {
		t.Fatalf("OwnerAlive(marked by us) = %v, %v", alive, known)
	}
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	me, err := self()
	if err != nil {
		t.Fatal(err)
	}
	dead := me
	dead.Pid, dead.Start = done.Process.Pid, 1
	deadMark := dead.String()
	// A mark made in another pid namespace (a linux in a container that
	// shares the cgroup tree) is not judged by its pid.
	foreign := me
	foreign.PidNS++
	foreignMark := foreign.String()

	for _, tt := range []struct {
		name   string
		mark   string // "" ours
		kill   bool
		want   Verdict
		killed []string
	}{
		{name: "marked by a live linux, empty", want: Live},
		{name: "marked by a dead linux, helper left, no kill", mark: deadMark, want: Leftovers},
		{name: "marked by a dead linux, helper left, kill", mark: deadMark, kill: true, want: Removed, killed: []string{"umlkit-m"}},
		{name: "marked in another pid namespace, a process in it", mark: foreignMark, kill: true, want: Live},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := filepath.Join(root, "umlkit-m")
			os.RemoveAll(m)
			mkTree(t, m, map[string]fakeCg{"": {procs: "4242\n", populated: true}, "guest": {}}, true)
			if tt.name == "marked by a live linux, empty" {
				mkTree(t, m, map[string]fakeCg{"": {}}, true)
			}
			if tt.mark == "" {
				if err := MarkOwner(m); err != nil {
					t.Fatal(err)
				}
			} else if err := unix.Setxattr(m, ownerXattr, []byte(tt.mark), 0); err != nil {
				t.Fatal(err)
			}
			age(t, m, time.Hour)
			var killed []string
			s := &Sweeper{UID: os.Getuid(), MinAge: MinAge, Kill: tt.kill, rmdir: fakeRmdir, kill: fakeKill(&killed)}
			r := s.One(m, true)
			for i := range killed {
				killed[i] = strings.TrimPrefix(killed[i], root+"/")
			}
			if r.Verdict != tt.want || !slices.Equal(killed, tt.killed) {
				t.Errorf("One = %v, killed %q; want %v, %q", r.Verdict, killed, tt.want, tt.killed)
			}
		})
	}
}

func TestParseStatStartTime(t *testing.T) {
	const stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615\n"
	if got, err := ParseStatStartTime(stat); err != nil || got != 987654 {
		t.Errorf("ParseStatStartTime = %d, %v; want 987654", got, err)
	}
	if _, err := ParseStatStartTime("1 (x) S 1 2"); err == nil {
		t.Errorf("a short stat parsed")
	}
	if st, err := StartTime(os.Getpid()); err != nil || st == 0 {
		t.Errorf("StartTime(self) = %d, %v", st, err)
	}
}

func FuzzParseStatStartTime(f *testing.F) {
	f.Add("1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200\n")
	f.Add("1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 5 1 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		ParseStatStartTime(s) // never panics
	})
}

func FuzzParseOwner(f *testing.F) {
	for _, s := range []string{"123 456 4026531836 4026531834", "1 0 0 0", " 9  9 9 9 ", "-1 2 3 4", "x y z w", "1 2 3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, ok := ParseOwner(s)
		if !ok {
			return
		}
		if o.Pid <= 0 {
			t.Errorf("ParseOwner(%q) pid %d", s, o.Pid)
		}
		if o2, ok2 := ParseOwner(o.String()); !ok2 || o2 != o {
			t.Errorf("round trip of %q: %+v %v; want %+v", s, o2, ok2, o)
		}
	})
}
