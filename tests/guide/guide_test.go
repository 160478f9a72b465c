// Package guide runs the command blocks of the user guide (docs/guide/*.md)
// so the guide cannot drift from the programs.
//
// A command block is a fenced block whose info string is
// "sh test=NAME" (run on the host with sh -e, or started in the background
// when the chapter's test says so) or "sh test=NAME guest" (typed into the
// console of a running guest). Every sh block must carry a test= name, and
// every name must be exercised by a test here (TestGuideEveryBlockTested).
package guide

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umlkit/umlkit/tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// block is one command block of the guide.
type block struct {
	name, file string
	line       int
	text       string
	guest      bool
}

var fenceRE = regexp.MustCompile("^```(\\S*)(.*)$")

// parseGuide reads every chapter and returns its command blocks by name.
func parseGuide(dir string) (map[string]block, []string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, nil, err
	}
	blocks := map[string]block{}
	var problems []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var cur *block
		var lang string
		for i, line := range strings.Split(string(data), "\n") {
			if cur == nil && lang == "" {
				m := fenceRE.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				lang = m[1]
				if lang == "" {
					lang = "none"
				}
				if lang != "sh" {
					if lang == "none" || lang == "console" || lang == "bash" {
						problems = append(problems, fmt.Sprintf("%s:%d: command-like block without \"sh test=NAME\" (use text for output)", filepath.Base(f), i+1))
					}
					continue
				}
				b := block{file: filepath.Base(f), line: i + 1}
				for _, w := range strings.Fields(m[2]) {
					switch {
					case strings.HasPrefix(w, "test="):
						b.name = strings.TrimPrefix(w, "test=")
					case w == "guest":
						b.guest = true
					default:
						problems = append(problems, fmt.Sprintf("%s:%d: unknown word %q in info string", b.file, b.line, w))
					}
				}
				if b.name == "" {
					problems = append(problems, fmt.Sprintf("%s:%d: sh block without test=NAME", b.file, b.line))
				}
				cur = &b
				continue
			}
			if line == "```" {
				if cur != nil && cur.name != "" {
					if old, dup := blocks[cur.name]; dup {
						problems = append(problems, fmt.Sprintf("%s:%d: test=%s already used at %s:%d", cur.file, cur.line, cur.name, old.file, old.line))
					}
					blocks[cur.name] = *cur
				}
				cur, lang = nil, ""
				continue
			}
			if cur != nil {
				cur.text += line + "\n"
			}
		}
	}
	return blocks, problems, nil
}

var (
	guideOnce   sync.Once
	guideBlocks map[string]block
	guideErr    error
)

func guideDir(t testing.TB) string {
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "docs", "guide")
}

func loadGuide(t testing.TB) map[string]block {
	t.Helper()
	guideOnce.Do(func() {
		var problems []string
		guideBlocks, problems, guideErr = parseGuide(guideDir(t))
		if guideErr == nil && len(problems) > 0 {
			guideErr = fmt.Errorf("malformed guide:\n%s", strings.Join(problems, "\n"))
		}
	})
	if guideErr != nil {
		t.Fatal(guideErr)
	}
	return guideBlocks
}

// covered lists every block name the tests below exercise.
var covered = []string{
	// 01-boot.md
	"boot-mkrootfs", "boot-linux", "boot-guest", "boot-poweroff",
	"debian-mkrootfs", "debian-boot", "debian-guest",
	// 02-disks.md
	"cow-vm1", "cow-vm2", "cow-vm1-guest", "cow-vm2-guest", "cow-ls", "cow-info", "cow-moo",
	"cow-merged-boot", "cow-merged-guest", "mkcow", "mkcow-boot", "mkcow-guest",
	"disk-make", "disk-boot", "disk-guest", "disk-mount", "disk-tar", "disk-host",
	// 03-mconsole.md
	"mc-boot", "mc-version", "mc-list", "mc-help", "mc-stop", "mc-proc", "mc-config", "mc-hotplug", "mc-hotplug-guest", "mc-remove", "mc-sysrq", "mc-stack",
	"mc-reboot", "mc-halt",
	// 04-networking.md
	"net-netns", "net-tap", "net-switch", "net-guest-a", "net-guest-b",
	"net-a-guest", "net-b-guest", "net-host-ping", "net-cleanup",
	"router-sw1", "router-sw2", "router-boot", "router-c1-boot", "router-c2-boot",
	"router-guest", "router-c1-guest", "router-c2-guest", "router-cleanup",
	"tuntap-boot", "tuntap-guest",
}

// TestGuideEveryBlockTested: every sh block is well formed and exercised,
// and every exercised name exists in the guide.
func TestGuideEveryBlockTested(t *testing.T) {
	blocks := loadGuide(t)
	want := map[string]bool{}
	for _, n := range covered {
		want[n] = true
		if _, ok := blocks[n]; !ok {
			t.Errorf("test exercises %q but the guide has no such block", n)
		}
	}
	var missing []string
	for n, b := range blocks {
		if !want[n] {
			missing = append(missing, fmt.Sprintf("%s:%d: %s", b.file, b.line, n))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("guide block not exercised by any test: %s", m)
	}
}

// session is a chapter's working directory with our binaries first on PATH
// and HOME inside it (so ~/.uml is private to the test).
type session struct {
	t      *testing.T
	dir    string
	env    []string
	blocks map[string]block
	subst  map[string]string // words of the guide replaced in every block
	marks  int
}

func newSession(t *testing.T) *session {
	t.Helper()
	blocks := loadGuide(t)
	dir := t.TempDir()
	home := filepath.Join(dir, ".home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := harness.Binaries(t)
	env := []string{
		"PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"TMPDIR=" + dir, // linux.uml's temp files
		"LC_ALL=C",
	}
	return &session{t: t, dir: dir, env: env, blocks: blocks, subst: map[string]string{}}
}

// text returns block name's text with the session's substitutions.
func (s *session) text(name string) block {
	s.t.Helper()
	b, ok := s.blocks[name]
	if !ok {
		s.t.Fatalf("the guide has no block test=%s", name)
	}
	for from, to := range s.subst {
		b.text = strings.ReplaceAll(b.text, from, to)
	}
	return b
}

// run runs a host block with sh -e in the session's directory and returns
// its combined output; a non-zero exit fails the test.
func (s *session) run(name string) string {
	s.t.Helper()
	b := s.text(name)
	if b.guest {
		s.t.Fatalf("%s is a guest block", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", b.text)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	s.t.Logf("$ %s%s", b.text, out)
	if err != nil {
		s.t.Fatalf("%s:%d (test=%s): %v\n%s", b.file, b.line, name, err, out)
	}
	return string(out)
}

// start runs a host block in the background (a guest, a switch) with its
// stdin a pipe for typing; it is killed at cleanup if still running.
func (s *session) start(name string) *harness.Guest {
	s.t.Helper()
	b := s.text(name)
	s.t.Logf("$ %s(background)", b.text)
	script := "cd " + shQuote(s.dir) + "\n" + b.text
	return harness.Start(s.t, s.env, "sh", "-ec", script)
}

// waitPrompt waits for the busybox root's banner (the shell comes next).
func (s *session) waitPrompt(g *harness.Guest, n int) {
	s.t.Helper()
	if err := harness.WaitCount(g, "umlkit busybox root: type", n, 90*time.Second); err != nil {
		s.t.Fatalf("%v\n%s", err, g.Output())
	}
}

// typeIn types guest block name into g's console and waits until it has
// run (a marker echoed after it); it returns the console output from the
// moment of typing.
func (s *session) typeIn(g *harness.Guest, name string) string {
	s.t.Helper()
	b := s.text(name)
	if !b.guest {
		s.t.Fatalf("%s is not a guest block", name)
	}
	s.marks++
	mark := fmt.Sprintf("GUIDE%dMARK", s.marks)
	from := len(g.Output())
	// The quotes keep the console's echo of the typed line from matching.
	typed := b.text + fmt.Sprintf("echo GUIDE%d\"\"MARK\n", s.marks)
	s.feed(g, typed)
	if err := g.WaitOutput(mark, 90*time.Second); err != nil {
		s.t.Fatalf("%s:%d (test=%s): %v\n%s", b.file, b.line, name, err, g.Output())
	}
	return g.Output()[from:]
}

// typeEnd types a guest block that ends the guest and waits for the host
// process to exit; it returns the exit status and the output from typing.
func (s *session) typeEnd(g *harness.Guest, name string) (int, string) {
	s.t.Helper()
	b := s.text(name)
	from := len(g.Output())
	s.feed(g, b.text)
	code, err := g.Wait(90 * time.Second)
	if err != nil {
		s.t.Fatalf("%s:%d (test=%s): %v\n%s", b.file, b.line, name, err, g.Output())
	}
	return code, g.Output()[from:]
}

// feed writes the lines one by one (a terminal user's pace is not needed,
// but a pause keeps the guest's line discipline from merging them).
func (s *session) feed(g *harness.Guest, text string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		g.Stdin().Write([]byte(line + "\n"))
		time.Sleep(50 * time.Millisecond)
	}
}

// want fails unless out contains every string.
func want(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	out = strings.ReplaceAll(ansiRE.ReplaceAllString(out, ""), "\r", "")
	for _, sub := range subs {
		if !strings.Contains(out, sub) {
			t.Errorf("%s: output lacks %q:\n%s", what, sub, out)
		}
	}
}

// ansiRE matches the terminal escapes shells print (cursor queries,
// bracketed paste).
var ansiRE = regexp.MustCompile("\x1b\\[[0-9;?]*[a-zA-Z]")

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
