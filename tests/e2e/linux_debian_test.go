package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// debianImage makes (or reuses from the cache) a Debian bookworm root image
// with uml_mkrootfs --debian. The cache lives in $UMLKIT_TEST_CACHE or
// /var/cache/umlkit-test and is keyed by the suite.
func debianImage(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.Peer(t, "debootstrap", "debootstrap")
	cache := os.Getenv("UMLKIT_TEST_CACHE")
	if cache == "" {
		cache = "/var/cache/umlkit-test"
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, "debian-bookworm-mkrootfs.img")
	if _, err := os.Stat(cached); err != nil {
		cmd := exec.Command(harness.Bin(t, "uml_mkrootfs"), "--debian", "bookworm", "--size", "1024", "--root-password", "umlkit", cached)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("uml_mkrootfs --debian bookworm: %v\n%s", err, lastLines(string(out), 30))
		}
	}
	img := filepath.Join(t.TempDir(), "debian.img")
	if out, err := exec.Command("cp", "--sparse=always", cached, img).CombinedOutput(); err != nil {
		t.Fatalf("copy cached image: %v: %s", err, out)
	}
	return img
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestIntegrationLinuxDebianLogin boots a debootstrapped Debian with its own
// sysvinit to the login prompt on the console, logs in as root and halts.
func TestIntegrationLinuxDebianLogin(t *testing.T) {
	requireLinuxHost(t)
	img := debianImage(t)
	g := harness.Start(t, nil, harness.Bin(t, "linux"), "ubd0="+img, "uml_dir="+t.TempDir(), "umid=deb")
	if err := g.WaitOutput("uml login:", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	in := g.Stdin()
	in.Write([]byte("root\n"))
	if err := g.WaitOutput("Password:", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("umlkit\n"))
	// login flushes pending input after the password: wait for the shell.
	if err := g.WaitOutput("root@uml:", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("echo LOGGED-IN-$(id -u); /sbin/poweroff -f\n"))
	if err := g.WaitOutput("LOGGED-IN-0", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if code, err := g.Wait(60 * time.Second); err != nil || code != 0 {
		t.Errorf("exit after poweroff = %d, %v", code, err)
	}
}
