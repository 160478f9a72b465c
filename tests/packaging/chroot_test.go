package packaging

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorFromSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deb822 := write("debian.sources", `Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
# a comment
URIs: http://sec.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example/debian http://other.example/debian
Suites: bookworm bookworm-updates
Components: main
`)
	if got := mirrorFromDeb822(deb822); got != "http://mirror.example/debian" {
		t.Errorf("mirrorFromDeb822 = %q", got)
	}
	list := write("sources.list", `# deb http://old.example/debian bookworm main
deb http://sec.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib
`)
	if got := mirrorFromList(list); got != "http://mirror.example/debian" {
		t.Errorf("mirrorFromList = %q", got)
	}
	if got := mirrorFromList(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("mirrorFromList(missing) = %q; want empty", got)
	}
}
