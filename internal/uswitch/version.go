package uswitch

import "github.com/umlkit/umlkit/internal/buildinfo"

// VersionLine is uml_switch's --version answer.
func VersionLine() string { return buildinfo.Line("uml_switch") }
