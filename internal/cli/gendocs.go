package cli

// Build-time generation of man pages and shell completions (umlkit issue #9).
//
// A cobra binary run with the environment variable UMLKIT_GENDOCS=DIR does
// not execute its command: Run writes the root command's man page and its
// bash, zsh and fish completion scripts under DIR and exits 0 (1 with a
// one-line error when it cannot). The layout under DIR mirrors where the
// packages install the files:
//
//	DIR/man<S>/<name>.<S>     man page, section S (tunctl: 8, the others: 1, as Debian has them)
//	DIR/bash/<name>           bash completion (/usr/share/bash-completion/completions/)
//	DIR/zsh/_<name>           zsh completion (/usr/share/zsh/vendor-completions/)
//	DIR/fish/<name>.fish      fish completion (/usr/share/fish/vendor_completions.d/)
//
// The man page's date comes from SOURCE_DATE_EPOCH when set (reproducible
// builds), otherwise from the clock. packaging/build.sh drives this for every
// cobra binary; see docs/packaging.md.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/umlkit/umlkit/internal/buildinfo"
)

// GenDocsEnv names the environment variable that turns Run into the
// man page and completion generator.
const GenDocsEnv = "UMLKIT_GENDOCS"

// manSections holds the man section of binaries not in section 1. It follows
// Debian's uml-utilities (tunctl(8)); everything else is a user command.
var manSections = map[string]string{
	"tunctl": "8",
}

// ManSection returns the man page section for the binary name.
func ManSection(name string) string {
	if s, ok := manSections[name]; ok {
		return s
	}
	return "1"
}

// GenDocs writes root's man page and bash/zsh/fish completions under dir in
// the layout described in the file comment. It creates the directories it
// needs and writes each file whole (temp file + rename), so a failure never
// leaves a half-written page behind.
func GenDocs(root *cobra.Command, dir string) error {
	if dir == "" {
		return errors.New("gendocs: empty output directory")
	}
	name := root.Name()
	sec := ManSection(name)
	root.DisableAutoGenTag = true
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
	header := &doc.GenManHeader{
		Title:   name,
		Section: sec,
		Source:  "umlkit " + buildinfo.Version,
		Manual:  "umlkit manual",
	}
	files := []struct {
		path string
		gen  func(io.Writer) error
	}{
		{filepath.Join("man"+sec, name+"."+sec), func(w io.Writer) error { return doc.GenMan(root, header, w) }},
		{filepath.Join("bash", name), func(w io.Writer) error { return root.GenBashCompletionV2(w, true) }},
		{filepath.Join("zsh", "_"+name), root.GenZshCompletion},
		{filepath.Join("fish", name+".fish"), func(w io.Writer) error { return root.GenFishCompletion(w, true) }},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.path), f.gen); err != nil {
			return fmt.Errorf("gendocs: %w", err)
		}
	}
	return nil
}

// writeFileAtomic creates path's directory and writes gen's output to a
// temporary file beside path, renaming it into place only when complete.
func writeFileAtomic(path string, gen func(io.Writer) error) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := gen(tmp); err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// genDocsMain is Run's body under UMLKIT_GENDOCS: generate, report, exit code.
func genDocsMain(root *cobra.Command, dir string, stderr io.Writer) int {
	if err := GenDocs(root, dir); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
		return 1
	}
	return 0
}
