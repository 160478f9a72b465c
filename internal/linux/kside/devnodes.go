package kside

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/umlkit/umlkit/internal/linux/plan"
	"golang.org/x/sys/unix"
)

// bindPrivateNodes is K's side: the private nodes replace the host's in
// K's own mount namespace.
func bindPrivateNodes(dir string) error {
	if dir == "" {
		return nil
	}
	for _, n := range plan.DevNodes {
		if _, err := os.Stat(n.Target); err != nil {
			continue // the host has no such device
		}
		if err := unix.Mount(filepath.Join(dir, n.Name), n.Target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", n.Target, err)
		}
	}
	return nil
}
