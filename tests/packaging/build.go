package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/umlkit/umlkit/tests/harness"
)

// Version stamped into the packages the tests build.
const testVersion = "9.9.9~test1"

// Packages holds the four files build.sh made.
type Packages struct {
	Dir                    string
	UtilitiesDeb, LinuxDeb string
	UtilitiesRPM, LinuxRPM string
	Version                string
	buildTime              time.Duration
}

var (
	buildOnce sync.Once
	built     Packages
	buildErr  error
	distDir   string
)

// Build runs packaging/build.sh once per test process.
func Build(t *testing.T) Packages {
	t.Helper()
	buildOnce.Do(func() {
		root, err := harness.ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		distDir, buildErr = os.MkdirTemp("", "umlkit-dist-")
		if buildErr != nil {
			return
		}
		start := time.Now()
		cmd := exec.Command("bash", filepath.Join(root, "packaging/build.sh"), distDir)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "VERSION="+testVersion, "SOURCE_DATE_EPOCH=1700000000")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("packaging/build.sh: %v\n%s", err, out)
			return
		}
		built = Packages{Dir: distDir, Version: testVersion, buildTime: time.Since(start)}
		for _, f := range []struct {
			dst  *string
			glob string
		}{
			{&built.UtilitiesDeb, "umlkit-utilities_" + testVersion + "-1_*.deb"},
			{&built.LinuxDeb, "umlkit-linux_" + testVersion + "-1_*.deb"},
			{&built.UtilitiesRPM, "umlkit-utilities-" + testVersion + "-1.*.rpm"},
			{&built.LinuxRPM, "umlkit-linux-" + testVersion + "-1.*.rpm"},
		} {
			m, _ := filepath.Glob(filepath.Join(distDir, f.glob))
			if len(m) != 1 {
				buildErr = fmt.Errorf("build.sh made %d files matching %s; want 1", len(m), f.glob)
				return
			}
			*f.dst = m[0]
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	t.Logf("packages built in %v", built.buildTime.Round(time.Millisecond))
	return built
}

// cleanupBuild removes the packages; TestMain calls it.
func cleanupBuild() {
	if distDir != "" {
		os.RemoveAll(distDir)
	}
}
