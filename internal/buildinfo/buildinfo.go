// Package buildinfo holds the version string stamped into every umlkit binary at
// build time (-ldflags "-X github.com/umlkit/umlkit/internal/buildinfo.Version=...").
//
// It imports only the standard library so that the setuid helper uml_net can use it.
package buildinfo

import "fmt"

// Version is set by the linker; "dev" marks an unstamped build.
var Version = "dev"

// Line is the one-line answer of every binary to --version:
// "<prog> (umlkit) <version>".
func Line(prog string) string {
	return fmt.Sprintf("%s (umlkit) %s", prog, Version)
}
