package guide

import (
	"os"
	"path/filepath"
	"testing"
)

// bootedRoot makes the chapter's root_fs with the guide's own command.
func bootedRoot(t *testing.T, s *session) {
	t.Helper()
	s.run("boot-mkrootfs")
}

// TestIntegrationGuideCOW: chapter 2, COW sharing, merging, uml_mkcow.
func TestIntegrationGuideCOW(t *testing.T) {
	requireLinux(t)
	s := newSession(t)
	bootedRoot(t, s)
	before, err := os.ReadFile(filepath.Join(s.dir, "root_fs"))
	if err != nil {
		t.Fatal(err)
	}
	vm1 := s.start("cow-vm1")
	vm2 := s.start("cow-vm2")
	s.waitPrompt(vm1, 1)
	s.waitPrompt(vm2, 1)
	want(t, "cow-vm1", vm1.Output(), `Creating "`+s.dir+`/vm1.cow" as COW file for "`+s.dir+`/root_fs"`)
	want(t, "cow-vm2", vm2.Output(), `Creating "`+s.dir+`/vm2.cow" as COW file for "`+s.dir+`/root_fs"`)
	code1, out1 := s.typeEnd(vm1, "cow-vm1-guest")
	code2, out2 := s.typeEnd(vm2, "cow-vm2-guest")
	if code1 != 0 || code2 != 0 {
		t.Errorf("exit statuses %d, %d; want 0, 0", code1, code2)
	}
	want(t, "cow-vm1-guest", out1, "\nwritten by vm1\n")
	want(t, "cow-vm2-guest", out2, "cat: can't open '/root/note': No such file or directory")
	after, _ := os.ReadFile(filepath.Join(s.dir, "root_fs"))
	if string(before) != string(after) {
		t.Errorf("root_fs changed although both machines wrote only to COW files")
	}
	want(t, "cow-ls", s.run("cow-ls"), "vm1.cow", "vm2.cow", "root_fs")
	want(t, "cow-info", s.run("cow-info"), "COW file:       vm1.cow\n", "version:        3\n",
		"backing file:   "+s.dir+"/root_fs\n", "backing check:  ok\n")
	s.run("cow-moo")
	g := s.start("cow-merged-boot")
	s.waitPrompt(g, 1)
	code, out := s.typeEnd(g, "cow-merged-guest")
	if code != 0 {
		t.Errorf("merged boot exit %d", code)
	}
	want(t, "cow-merged-guest", out, "\nwritten by vm1\n")

	s.run("mkcow")
	if _, err := os.Stat(filepath.Join(s.dir, "vm3.cow")); err != nil {
		t.Fatal(err)
	}
	g = s.start("mkcow-boot")
	s.waitPrompt(g, 1)
	if code, _ := s.typeEnd(g, "mkcow-guest"); code != 0 {
		t.Errorf("boot on uml_mkcow's file: exit %d", code)
	}
}

// TestIntegrationGuideSecondDisk: chapter 2, a second disk.
func TestIntegrationGuideSecondDisk(t *testing.T) {
	requireLinux(t)
	s := newSession(t)
	bootedRoot(t, s)
	s.run("disk-make")
	g := s.start("disk-boot")
	s.waitPrompt(g, 1)
	out := s.typeIn(g, "disk-guest")
	want(t, "disk-guest", out, "/dev/ubdb\n", "/dev/ubdc\n", " 53 ef\n")
	// The guide says plainly that mounting does not work yet; when it
	// starts working this fails, and the guide must be updated.
	out = s.typeIn(g, "disk-mount")
	want(t, "disk-mount", out, "hello from the host\n")
	if code, _ := s.typeEnd(g, "disk-tar"); code != 0 {
		t.Errorf("exit %d after disk-tar", code)
	}
	want(t, "disk-host", s.run("disk-host"), "hello from the host\n", "root/root")
}
