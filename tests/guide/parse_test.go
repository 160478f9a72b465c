package guide

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseGuide checks the block parser on a small chapter: names, guest
// marks and texts, and every malformed block reported.
func TestParseGuide(t *testing.T) {
	dir := t.TempDir()
	md := "# T\n\n```sh test=host\necho a\necho b\n```\n\n```sh test=in guest\nls /\n```\n\n" +
		"```text\noutput, not a command\n```\n\n```sh\nuntagged\n```\n\n```\nbare\n```\n\n" +
		"```sh test=host\ndup\n```\n\n```sh test=x bogus\ny\n```\n"
	if err := os.WriteFile(filepath.Join(dir, "c.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks, problems, err := parseGuide(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b := blocks["in"]; !b.guest || b.text != "ls /\n" || b.file != "c.md" {
		t.Errorf("guest block = %+v", b)
	}
	if _, ok := blocks["x"]; !ok {
		t.Errorf("block x missing: %v", blocks)
	}
	wantProblems := []string{
		"c.md:16: sh block without test=NAME",
		"c.md:20: command-like block without",
		"c.md:24: test=host already used at c.md:3",
		`c.md:28: unknown word "bogus"`,
	}
	all := strings.Join(problems, "\n")
	for _, w := range wantProblems {
		if !strings.Contains(all, w) {
			t.Errorf("problems lack %q:\n%s", w, all)
		}
	}
	if len(problems) != len(wantProblems) {
		t.Errorf("%d problems; want %d:\n%s", len(problems), len(wantProblems), all)
	}
}
