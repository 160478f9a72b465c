// Package internal_test holds repository-wide checks: imports point downward
// through the layers of shared/docs/style.md, "unsafe" stays in *_unsafe.go,
// and every Go file is gofmt-clean.
package internal_test

import (
	"encoding/json"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/umlkit/umlkit"

// layer of every internal package (path below internal/). A new package must
// be added here: the test fails for unlisted ones, and for listed ones that
// do not exist.
//
//	0 leaves (stdlib + x/sys)          1 pure wire/file formats (stdlib only)
//	2 devices, transports, daemons     3 linux's three processes
//	4 linux's entry point
//
// cli sits beside the mains (layer 2 rules: it may use cobra).
var layer = map[string]int{
	"buildinfo": 0, "rawcli": 0, "sys": 0, "fdpass": 0, "atomicfile": 0, "childrole": 0, "testutil": 0,
	"progress": 0, "hostcheck": 0, "stage": 0,

	"cow": 1, "mconsole": 1, "switchproto": 1, "ether": 1, "cmdline": 1, "helperproto": 1, "slip": 1,
	"watchdogproto": 1, "chanspec": 1, "procstatus": 1, "procmem": 1, "linux/plan": 1, "encap": 1, "gso": 1,
	"initramfs": 1, "parttable": 1, "procview": 1, "vxlan": 1,

	"tuntap": 2, "ubd": 2, "moo": 2, "netdev": 2, "netdev/netdevtest": 2, "uswitch": 2,
	"mconsole/mcclient": 2, "mconsole/mcserver": 2, "mconsole/mconsoletest": 2, "umid": 2, "netsetup": 2,
	"umlnet": 2, "tunctl": 2, "porthelper": 2, "watchdog": 2, "mkrootfs": 2, "cli": 2, "blockfuse": 2,
	"portchan": 2, "uswitch/switchtest": 2, "mountemu": 2, "loopdev": 2, "cgroup": 2, "initramfs/unpack": 2,
	"procfuse": 2,

	// P, K and G talk only through linux/plan: none imports another.
	"linux/host": 3, "linux/kside": 3, "linux/guest": 3,

	"linux": 4,
}

// sameLayer lists the imports allowed between packages of one layer (by
// importer); every other import must point to a lower layer.
var sameLayer = map[string][]string{
	"rawcli":                {"buildinfo"},
	"testutil":              {"hostcheck"},
	"moo":                   {"ubd"},
	"netdev":                {"tuntap"},
	"netdev/netdevtest":     {"netdev"},
	"portchan":              {"porthelper"},
	"tunctl":                {"tuntap"},
	"umlnet":                {"netsetup", "tuntap"},
	"uswitch":               {"tuntap"},
	"mconsole/mconsoletest": {"mconsole/mcserver"},
}

// entry is the one internal package each command's main calls; besides
// it a main may import only internal/cli and internal/rawcli.
var entry = map[string]string{
	"linux": "linux", "port-helper": "porthelper", "tunctl": "tunctl", "uml_mconsole": "mconsole/mcclient",
	"uml_mkcow": "moo", "uml_moo": "moo", "uml_mkrootfs": "mkrootfs", "uml_net": "umlnet",
	"uml_switch": "uswitch", "uml_watchdog": "watchdog",
}

// thirdPartyAllowed lists the modules layer-2+ packages may import.
var thirdPartyAllowed = []string{
	"golang.org/x/sys", "golang.org/x/term", "github.com/spf13/cobra", "github.com/spf13/pflag",
	"github.com/creack/pty", "github.com/songgao/water", "github.com/google/gopacket",
	"github.com/hanwen/go-fuse/v2", "github.com/vishvananda/netlink", "github.com/vishvananda/netns",
	"github.com/google/go-cmp", "github.com/chzyer/readline", "github.com/mattn/go-isatty",
	"github.com/coreos/go-systemd/v22", "github.com/godbus/dbus/v5",
	"github.com/klauspost/compress", "github.com/ulikunitz/xz", "github.com/pierrec/lz4/v4",
}

type goPkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []goPkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func internalName(path string) (string, bool) {
	return strings.CutPrefix(path, module+"/internal/")
}

func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func TestLayers(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.HasPrefix(p.ImportPath, module+"/tests/") || p.ImportPath == module+"/bench" || strings.HasPrefix(p.ImportPath, module+"/bench/") {
			continue
		}
		name, isInternal := internalName(p.ImportPath)
		if !isInternal {
			checkMain(t, p)
			continue
		}
		if name == "" {
			continue
		}
		l, ok := layer[name]
		if !ok {
			t.Errorf("internal/%s is not in the layer table of internal/repo_test.go", name)
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/cmd/") {
				t.Errorf("internal/%s imports %s", name, imp)
				continue
			}
			if dep, ok := internalName(imp); ok {
				dl, known := layer[dep]
				switch {
				case !known:
					// reported on its own
				case l <= 1 && dep != "testutil" && dl > 0:
					t.Errorf("internal/%s (layer %d) imports internal/%s (layer %d): layers 0-1 import only layer 0", name, l, dep, dl)
				case dl > l:
					t.Errorf("internal/%s (layer %d) imports internal/%s (layer %d): imports must point downward", name, l, dep, dl)
				case dl == l && !slices.Contains(sameLayer[name], dep):
					t.Errorf("internal/%s imports internal/%s of its own layer %d: not in sameLayer of internal/repo_test.go", name, dep, l)
				}
				continue
			}
			if isStdlib(imp) {
				continue
			}
			if l == 1 {
				t.Errorf("internal/%s (layer 1, pure format) imports %s: layer 1 uses the standard library only", name, imp)
				continue
			}
			if l == 0 && !strings.HasPrefix(imp, "golang.org/x/sys") {
				t.Errorf("internal/%s (layer 0) imports %s: layer 0 uses the standard library and x/sys only", name, imp)
				continue
			}
			allowed := false
			for _, m := range thirdPartyAllowed {
				if imp == m || strings.HasPrefix(imp, m+"/") {
					allowed = true
				}
			}
			if !allowed {
				t.Errorf("internal/%s imports %s, which is not in thirdPartyAllowed", name, imp)
			}
		}
	}
}

// checkMain checks a package outside internal/: nothing imports cmd/*,
// and a command's main imports only its entry package, internal/cli and
// internal/rawcli.
func checkMain(t *testing.T, p goPkg) {
	t.Helper()
	cmd, isCmd := strings.CutPrefix(p.ImportPath, module+"/cmd/")
	for _, imp := range p.Imports {
		if strings.HasPrefix(imp, module+"/cmd/") {
			t.Errorf("%s imports %s: nothing imports cmd/*", p.ImportPath, imp)
		}
		dep, internal := internalName(imp)
		if !isCmd || !internal {
			continue
		}
		if want, ok := entry[cmd]; !ok {
			t.Errorf("cmd/%s has no entry package in internal/repo_test.go", cmd)
		} else if dep != want && dep != "cli" && dep != "rawcli" {
			t.Errorf("cmd/%s imports internal/%s: a main imports only its entry package (internal/%s), internal/cli and internal/rawcli", cmd, dep, want)
		}
	}
}

// TestLayerTableMatchesTree fails for packages in the tables that do not
// exist.
func TestLayerTableMatchesTree(t *testing.T) {
	exists := map[string]bool{}
	for _, p := range listPackages(t) {
		if name, ok := internalName(p.ImportPath); ok {
			exists[name] = true
		}
	}
	for name := range layer {
		if !exists[name] {
			t.Errorf("internal/%s is in the layer table but does not exist", name)
		}
	}
	for name, deps := range sameLayer {
		for _, d := range append([]string{name}, deps...) {
			if !exists[d] {
				t.Errorf("internal/%s is in sameLayer but does not exist", d)
			}
		}
	}
	for cmd, e := range entry {
		if !exists[e] {
			t.Errorf("the entry package internal/%s of cmd/%s does not exist", e, cmd)
		}
	}
}

func goFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "bin" || (strings.HasPrefix(d.Name(), ".") && path != "..")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestUnsafeOnlyInUnsafeFiles(t *testing.T) {
	fset := token.NewFileSet()
	for _, path := range goFiles(t) {
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("parse %s: %v", path, err)
			continue
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "unsafe" && !strings.HasSuffix(path, "_unsafe.go") && !strings.HasSuffix(path, "_unsafe_test.go") {
				t.Errorf("%s imports unsafe: keep it in *_unsafe.go", path)
			}
		}
	}
}

func TestGofmt(t *testing.T) {
	for _, path := range goFiles(t) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := format.Source(src)
		if err != nil {
			t.Errorf("gofmt %s: %v", path, err)
			continue
		}
		if string(got) != string(src) {
			t.Errorf("%s is not gofmt-clean (run gofmt -w)", path)
		}
	}
}
