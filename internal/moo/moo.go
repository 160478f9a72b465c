//go:build linux

// Package moo holds the command-line front ends of the COW tools, uml_mkcow
// and uml_moo: argv parsed as the real tools parse it, their usage texts,
// messages, streams and exit codes (shared/spec/cow.md §7–§8), on top of
// internal/ubd, which does the work.
//
// Differences from the real tools are deliberate and documented in
// docs/cow.md: uml_moo accepts -d and -b in either order, refuses nothing the
// real one accepts, writes outputs atomically and shows progress on a
// terminal; both answer a lone --help or --version.
package moo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/umlkit/umlkit/internal/progress"
	"github.com/umlkit/umlkit/internal/rawcli"
	"github.com/umlkit/umlkit/internal/ubd"
)

const mooUsage = `%[1]s usage:
	%[1]s [ -b <actual backing file> ] <COW file> <new backing file>
	%[1]s [ -b <actual backing file> ] -d <COW file>
Creates a new filesystem image from the COW file and its backing file.
Specifying -d will cause a destructive, in-place merge of the COW file into
its current backing file
Specifying -b overrides the backing_file specified in the COW file.  This is
needed when dealing with a COW file that was created inside a chroot jail.
%[1]s supports version 1,2 and 3 COW files.
`

// umlkit additions, shown by --help only.
const mooExtra = `
umlkit additions:
	%[1]s --info [--json] [ -b <actual backing file> ] <COW file>
		describe a COW file (header, layout, dirty sectors, backing check)
	-d and -b may be given in either order.
`

// Stdio is what a front end prints to.
type Stdio struct {
	Stdout, Stderr io.Writer
	// StderrTTY: stderr is a terminal (progress is shown only then).
	StderrTTY bool
}

type mooArgs struct {
	inPlace, info, json bool
	backing             string
	names               []string
}

// parseMoo reads options until the first name: -d, -b FILE, --info, --json, --.
func parseMoo(args []string) (mooArgs, bool) {
	var a mooArgs
	i := 0
	for ; i < len(args); i++ {
		switch args[i] {
		case "-d":
			a.inPlace = true
			continue
		case "-b":
			if i+1 >= len(args) {
				return a, false
			}
			i++
			a.backing = args[i]
			continue
		case "--info":
			a.info = true
			continue
		case "--json":
			a.json = true
			continue
		case "--":
			i++
		}
		break
	}
	a.names = args[i:]
	switch {
	case a.info:
		return a, len(a.names) == 1 && !a.inPlace
	case a.json:
		return a, false
	case a.inPlace:
		return a, len(a.names) == 1
	}
	return a, len(a.names) == 2
}

// Moo runs uml_moo with argv[0] prog and arguments args; it returns the exit
// status.
func Moo(ctx context.Context, prog string, args []string, io Stdio) int {
	if len(args) == 1 {
		if ok, code := rawcli.Common("uml_moo", fmt.Sprintf(mooUsage+mooExtra, prog), args, io.Stdout); ok {
			return code
		}
	}
	a, ok := parseMoo(args)
	if !ok {
		fmt.Fprintf(io.Stderr, mooUsage, prog)
		return 1
	}
	if a.info {
		return info(a, io)
	}
	o := ubd.MergeOptions{COW: a.names[0], Backing: a.backing, InPlace: a.inPlace, Notice: io.Stdout}
	if !a.inPlace {
		o.Output = a.names[1]
	}
	var meter *progress.Meter
	if io.StderrTTY {
		meter = progress.New(io.Stderr, "merging")
		o.Progress = meter.Update
	}
	err := ubd.Merge(ctx, o)
	if meter != nil {
		meter.Done()
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		if a.inPlace {
			fmt.Fprintln(io.Stderr, "Interrupted; run the same command again to finish the in-place merge")
		} else {
			fmt.Fprintln(io.Stderr, "Interrupted; nothing was written")
		}
		return 130
	}
	fmt.Fprintln(io.Stderr, err)
	return 1
}

func info(a mooArgs, io Stdio) int {
	// Reader notices go to stderr here: stdout carries only the view (JSON).
	in, err := ubd.ReadInfo(a.names[0], a.backing, io.Stderr)
	if err != nil {
		fmt.Fprintln(io.Stderr, err)
		return 1
	}
	if a.json {
		b, _ := json.MarshalIndent(in, "", "  ")
		fmt.Fprintf(io.Stdout, "%s\n", b)
		return 0
	}
	var sb strings.Builder
	row := func(k, f string, v ...any) { fmt.Fprintf(&sb, "%-15s %s\n", k+":", fmt.Sprintf(f, v...)) }
	row("COW file", "%s", in.File)
	layout := ""
	if in.BrokenLayout {
		layout = " (broken 64-bit layout)"
	}
	row("version", "%d%s", in.Version, layout)
	row("backing file", "%s", in.BackingFile)
	row("backing mtime", "%d (%s)", in.Mtime, time.Unix(int64(in.Mtime), 0).UTC().Format(time.RFC3339))
	row("backing size", "%d bytes (%s)", in.Size, progress.Bytes(int64(in.Size)))
	row("sector size", "%d", in.SectorSize)
	row("alignment", "%d", in.Alignment)
	row("bitmap", "%d bytes at offset %d", in.BitmapLen, in.BitmapOffset)
	row("data offset", "%d", in.DataOffset)
	row("sectors", "%d, %d dirty (%s)", in.Sectors, in.DirtySectors, progress.Bytes(in.DirtyBytes))
	row("file size", "%d bytes, %d allocated", in.FileSize, in.FileAllocated)
	row("backing check", "%s", in.BackingStatus)
	io.Stdout.Write([]byte(sb.String()))
	return 0
}

// OSStdio is the process's stdout and stderr as a Stdio (progress on
// stderr when it is a terminal).
func OSStdio() Stdio {
	return Stdio{Stdout: os.Stdout, Stderr: os.Stderr, StderrTTY: progress.IsTerminal(os.Stderr)}
}
