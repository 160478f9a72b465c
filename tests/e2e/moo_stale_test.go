package e2e

import (
	"bytes"
	"crypto/md5"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestMooStaleTemporaries (issue 19): a uml_moo killed with SIGKILL leaves
// its .OUT.tmp-* file; a run on the same output while the first is alive
// (stopped) keeps it, and the next run after the kill removes it.
func TestMooStaleTemporaries(t *testing.T) {
	ours := harness.Bin(t, "uml_moo")
	dir := t.TempDir()
	back := filepath.Join(dir, "back.img")
	block := bytes.Repeat([]byte("umlkit-stale-temporaries-"), 1<<20/25+1)[:1<<20]
	f, err := os.Create(back)
	if err != nil {
		t.Fatal(err)
	}
	const mib = 512
	for range mib {
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	c := filepath.Join(dir, "d.cow")
	if out, err := exec.Command(harness.Bin(t, "uml_mkcow"), c, back).CombinedOutput(); err != nil {
		t.Fatalf("uml_mkcow: %v: %s", err, out)
	}
	out := filepath.Join(dir, "out.img")
	temps := func() []string {
		ents, _ := os.ReadDir(dir)
		var ts []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".out.img.tmp-") {
				ts = append(ts, e.Name())
			}
		}
		return ts
	}

	first := exec.Command(ours, c, out)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	defer first.Process.Kill()
	if err := testutil.WaitFor(20*time.Second, func() bool { return len(temps()) > 0 }); err != nil {
		t.Fatalf("no temporary file appeared")
	}
	if err := first.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Skipf("the first uml_moo finished before it could be stopped (%d MiB copied too fast)", mib)
	case <-time.After(50 * time.Millisecond):
	}
	live := temps()
	if len(live) != 1 {
		t.Fatalf("temporaries = %v; want one", live)
	}

	// A concurrent run on the same output: the live run's file stays.
	if o, err := exec.Command(ours, c, out).CombinedOutput(); err != nil {
		t.Fatalf("second uml_moo: %v: %s", err, o)
	}
	if ts := temps(); len(ts) != 1 || ts[0] != live[0] {
		t.Fatalf("after a concurrent run temporaries = %v; want the live run's %v kept", ts, live)
	}

	first.Process.Signal(syscall.SIGKILL)
	first.Process.Signal(syscall.SIGCONT)
	<-done
	if ts := temps(); len(ts) != 1 {
		t.Fatalf("after SIGKILL temporaries = %v; want the killed run's file left", ts)
	}

	// The next run removes what the killed one left.
	os.Remove(out)
	if o, err := exec.Command(ours, c, out).CombinedOutput(); err != nil {
		t.Fatalf("third uml_moo: %v: %s", err, o)
	}
	if ts := temps(); len(ts) != 0 {
		t.Errorf("after the next run temporaries = %v; want none", ts)
	}
	if md5.Sum(readFile(t, out)) != md5.Sum(readFile(t, back)) {
		t.Error("merged image differs from the backing file (the COW file is clean)")
	}
}
