package guide

import (
	"os"
	"path/filepath"
	"testing"
)

func init() {
	covered = append(covered,
		// 06-hostfs.md
		"hostfs-make", "hostfs-boot", "hostfs-root", "hostfs-dir", "hostfs-ro", "hostfs-poweroff", "hostfs-host",
		"hostfs-jail-boot", "hostfs-jail-guest", "hostfs-jail-off",
		// 02-disks.md, "A new disk"
		"newdisk-make", "newdisk-boot", "newdisk-guest", "newdisk-off", "newdisk-host",
	)
}

// TestIntegrationGuideHostfs: chapter 6, hostfs.
func TestIntegrationGuideHostfs(t *testing.T) {
	requireLinux(t)
	s := newSession(t)
	s.subst["/home/user/uml"] = s.dir
	s.run("hostfs-make")
	g := s.start("hostfs-boot")
	s.waitPrompt(g, 1)
	want(t, "hostfs-root", s.typeIn(g, "hostfs-root"), "\nhello from the host\n")
	want(t, "hostfs-dir", s.typeIn(g, "hostfs-dir"), "\nreadme\n", " /mnt/shared ")
	want(t, "hostfs-ro", s.typeIn(g, "hostfs-ro"), "touch: /mnt/ro/new: Read-only file system")
	if code, _ := s.typeEnd(g, "hostfs-poweroff"); code != 0 {
		t.Errorf("exit %d after hostfs-poweroff", code)
	}
	want(t, "hostfs-host", s.run("hostfs-host"), "written in the machine\n")
	if _, err := os.Stat(filepath.Join(s.dir, "shared", "new")); err == nil {
		t.Errorf("the read-only mount let the machine create a file")
	}

	g = s.start("hostfs-jail-boot")
	s.waitPrompt(g, 1)
	out := s.typeIn(g, "hostfs-jail-guest")
	want(t, "hostfs-jail-guest", out, "\nfrom-guest  readme\n")
	if n := countLines(out, "from-guest  readme"); n != 2 {
		t.Errorf("hostfs-jail-guest: %d listings of the shared directory; want 2:\n%s", n, out)
	}
	if code, _ := s.typeEnd(g, "hostfs-jail-off"); code != 0 {
		t.Errorf("exit %d after hostfs-jail-off", code)
	}
}

func countLines(out, line string) int {
	n := 0
	for _, l := range splitLines(out) {
		if l == line {
			n++
		}
	}
	return n
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			l := s[start:i]
			if len(l) > 0 && l[len(l)-1] == '\r' {
				l = l[:len(l)-1]
			}
			out = append(out, l)
			start = i + 1
		}
	}
	return out
}

// TestIntegrationGuideNewDisk: chapter 2, a new disk formatted and mounted
// inside the machine.
func TestIntegrationGuideNewDisk(t *testing.T) {
	requireLinux(t)
	s := newSession(t)
	bootedRoot(t, s)
	s.run("newdisk-make")
	g := s.start("newdisk-boot")
	s.waitPrompt(g, 1)
	out := s.typeIn(g, "newdisk-guest")
	want(t, "newdisk-guest", out, " /mnt\n")
	if code, _ := s.typeEnd(g, "newdisk-off"); code != 0 {
		t.Errorf("exit %d after newdisk-off", code)
	}
	want(t, "newdisk-host", s.run("newdisk-host"), "on the new disk\n")
}
