package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/cgroup"
	"github.com/umlkit/umlkit/internal/childrole"
	"github.com/umlkit/umlkit/internal/linux/kside"
	"github.com/umlkit/umlkit/internal/stage"
	"github.com/umlkit/umlkit/internal/testutil"

	_ "github.com/umlkit/umlkit/internal/linux/guest" // G's role, for the real child path
)

func TestMain(m *testing.M) {
	childrole.Dispatch() // K and G run as re-execs of this test binary
	os.Exit(m.Run())
}

// leftovers describes what a run of linux could leave behind that mark
// (a unique path) identifies: processes, mounts, and, in this process,
// descriptors and cgroups.
type leftovers struct {
	fds     int
	mounts  int
	cgroups []string
}

func snapshot(t *testing.T, umid string) leftovers {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var cgs []string
	self, _ := cgroup.Self()
	var homes []string
	if mnt, err := cgroup.V2Mount(); err == nil && self.V2 != "" {
		homes = append(homes, filepath.Join(mnt, self.V2))
	}
	if mnt, err := cgroup.V1Mount("memory"); err == nil && self.V1["memory"] != "" {
		homes = append(homes, filepath.Join(mnt, self.V1["memory"]))
	}
	for _, h := range homes { // umlkit-UMID, or umlkit-UMID-PID when that was taken
		for _, pat := range []string{cgroup.Prefix + umid, cgroup.Prefix + umid + "-*"} {
			m, _ := filepath.Glob(filepath.Join(h, pat))
			cgs = append(cgs, m...)
		}
	}
	return leftovers{fds: len(ents), mounts: strings.Count(string(mi), "\n"), cgroups: cgs}
}

// processesWith lists the pids whose environment mentions mark.
func processesWith(mark string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && bytes.Contains(b, []byte(mark)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestIntegrationBootStages fails every stage of P's boot, of a boot's K
// start and of K in turn (internal/stage.EnvFail) and checks that linux
// says so, exits non-zero and leaves nothing: its umid directory, id
// block, processes, mounts, descriptors, cgroups.
func TestIntegrationBootStages(t *testing.T) {
	testutil.RequireUserNS(t)
	if os.Geteuid() != 0 {
		testutil.RequireFUSE(t)
	}
	root := t.TempDir() // a directory root: nothing to mount but a bind
	for _, d := range []string{"sbin", "bin", "dev", "proc", "sys", "tmp"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "sbin/init"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	var ctx context.Context
	m := &machine{}
	var names []string
	names = append(names, stage.Names(m.bootStages(&ctx))...)
	names = append(names, stage.Names(m.kernelStages(&kernelStart{}))...)
	names = append(names, kside.StageNames()...)
	if len(names) < 25 {
		t.Fatalf("only %d stages: %q", len(names), names)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	seen := map[string]bool{}
	for i, name := range names {
		if seen[name] {
			t.Errorf("two stages are named %q: a failure injected there would hit the first only", name)
			continue
		}
		seen[name] = true
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			umlDir := t.TempDir()
			umid := fmt.Sprintf("stages%d", i)
			before := snapshot(t, umid)
			t.Setenv(stage.EnvFail, name)
			var out bytes.Buffer
			code := Main([]string{"ubd0=" + root, "umid=" + umid, "uml_dir=" + umlDir, "con=none", "ssl=none"},
				Stdio{In: null, Out: &out, Err: &out})
			if code == 0 {
				t.Fatalf("linux exited 0 with stage %q failing; output:\n%s", name, out.String())
			}
			if !strings.Contains(out.String(), stage.ErrInjected.Error()) {
				t.Errorf("output does not name the injected failure:\n%s", out.String())
			}
			if _, err := os.Stat(filepath.Join(umlDir, umid)); err == nil {
				t.Errorf("%s/%s is left behind", umlDir, umid)
			}
			if pids := processesWith(umlDir); len(pids) > 0 {
				t.Errorf("processes left behind: %v", pids)
			}
			after := snapshot(t, umid)
			if after.fds != before.fds {
				t.Errorf("descriptors: %d before, %d after", before.fds, after.fds)
			}
			if after.mounts != before.mounts {
				t.Errorf("mounts: %d before, %d after", before.mounts, after.mounts)
			}
			if len(after.cgroups) > 0 {
				t.Errorf("cgroups left behind: %v", after.cgroups)
			}
			if os.Geteuid() == 0 {
				b, err := allocIDs() // every block this run held is free again
				if err != nil {
					t.Errorf("id block not released: %v", err)
				} else {
					b.Close()
				}
			}
		})
	}
}
