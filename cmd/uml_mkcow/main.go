// Command uml_mkcow creates a UML COW file over a backing file:
// uml_mkcow [-f] COW BACKING (shared/spec/cow.md §7).
package main

import (
	"os"

	"github.com/umlkit/umlkit/internal/moo"
)

func main() {
	os.Exit(moo.Mkcow(os.Args[0], os.Args[1:], moo.Stdio{Stdout: os.Stdout, Stderr: os.Stderr}))
}
