package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyBudget keeps the setuid helper small (style convention 13):
// no CLI frameworks, ptys, packet capture, HTTP or program execution, and no
// internal package above the device layer.
func TestDependencyBudget(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"github.com/spf13/cobra", "github.com/spf13/pflag", "github.com/creack/pty",
		"github.com/google/gopacket", "net/http", "os/exec"}
	const internal = "github.com/umlkit/umlkit/internal/"
	allowedInternal := map[string]bool{"sys": true, "tuntap": true, "helperproto": true, "fdpass": true,
		"netsetup": true, "umlnet": true, "rawcli": true, "buildinfo": true}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned only %q", deps)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("cmd/uml_net depends on %s", d)
			}
		}
		if name, ok := strings.CutPrefix(d, internal); ok && !allowedInternal[name] {
			t.Errorf("cmd/uml_net depends on internal/%s, which is not in its allow-list", name)
		}
		if first, _, _ := strings.Cut(d, "/"); strings.Contains(first, ".") &&
			!strings.HasPrefix(d, "golang.org/x/sys/") && !strings.HasPrefix(d, "github.com/vishvananda/") &&
			!strings.HasPrefix(d, "github.com/umlkit/umlkit/") {
			t.Errorf("cmd/uml_net depends on third-party %s (allowed: x/sys, vishvananda/netlink)", d)
		}
	}
}
