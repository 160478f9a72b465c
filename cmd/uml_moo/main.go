// Command uml_moo merges a UML COW file with its backing file into a new
// image, or in place with -d: uml_moo [-b BACKING] [-d] COW [NEW]
// (shared/spec/cow.md §8). uml_moo --info [--json] COW describes a COW file.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/umlkit/umlkit/internal/moo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := moo.Moo(ctx, os.Args[0], os.Args[1:], moo.OSStdio())
	stop()
	os.Exit(code)
}
