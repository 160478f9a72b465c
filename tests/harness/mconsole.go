package harness

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MconsoleInit is the /init of MconsoleImage: it names the host "umltest",
// prints MC-READY, then a tick line ("TICK <n>") every 0.2 s until halted.
const MconsoleInit = `hostname umltest
echo MC-READY
i=0
while true; do i=$((i+1)); echo "TICK $i"; sleep 0.2; done
`

// MconsoleImage builds a busybox image whose init runs MconsoleInit.
func MconsoleImage(t testing.TB, dir string) string {
	t.Helper()
	return BusyboxImage(t, dir, Image{Init: MconsoleInit, SizeMB: 32})
}

// MconsoleGuest is a real UML guest whose uml_dir is Home/.uml, so both
// uml_mconsole implementations find it by umid with HOME=Home.
type MconsoleGuest struct {
	*Guest
	Home, UMLDir, Umid, Socket string
}

// Env is the environment for clients: HOME pointing at the guest's home.
func (g *MconsoleGuest) Env() []string { return []string{"HOME=" + g.Home} }

// BootMconsoleUML boots Debian's linux.uml on a copy-free image with
// umid=umid and uml_dir=<home>/.uml, and waits for the mconsole socket and
// the init's MC-READY marker.
func BootMconsoleUML(t testing.TB, image, umid string, extra ...string) *MconsoleGuest {
	t.Helper()
	uml := RealUML(t)
	home := t.TempDir()
	umlDir := filepath.Join(home, ".uml")
	argv := []string{uml, "ubd0=" + image, "mem=64M", "con0=fd:0,fd:1", "con=null", "ssl=null",
		"init=/init", "uml_dir=" + umlDir, "umid=" + umid}
	argv = append(argv, extra...)
	g := Start(t, []string{"TMPDIR=" + home}, argv...)
	mg := &MconsoleGuest{Guest: g, Home: home, UMLDir: umlDir, Umid: umid,
		Socket: filepath.Join(umlDir, umid, "mconsole")}
	if err := g.WaitOutput("MC-READY", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mg.Socket); err != nil {
		t.Fatalf("mconsole socket: %v", err)
	}
	return mg
}

var tickRE = regexp.MustCompile(`TICK (\d+)`)

// LastTick returns the highest TICK number the guest printed (0 if none).
func (g *MconsoleGuest) LastTick() int {
	n := 0
	for _, m := range tickRE.FindAllStringSubmatch(g.Output(), -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return n
}

// Count returns how often s occurs in the guest's output.
func (g *MconsoleGuest) Count(s string) int { return strings.Count(g.Output(), s) }

// RunEnv runs path with args in dir with env added, stdin from stdin, and
// returns its output and exit status.
func RunEnv(t testing.TB, dir string, env []string, stdin, path string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s %q: %v", path, args, err)
	}
	return r
}
