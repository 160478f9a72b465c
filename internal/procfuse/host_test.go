//go:build linux

package procfuse

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/procview"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMemCgroupV2(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		// the hierarchy's root has no memory.max: the walk stops below it
		"memory.stat":                       "anon 1\n",
		"user.slice/memory.max":             "max\n",
		"user.slice/memory.current":         "500000000\n",
		"user.slice/memory.swap.max":        "max\n",
		"user.slice/memory.swap.current":    "0\n",
		"user.slice/m/memory.max":           "67108864\n",
		"user.slice/m/memory.current":       "20971520\n",
		"user.slice/m/memory.swap.max":      "1048576\n",
		"user.slice/m/memory.swap.current":  "4096\n",
		"user.slice/m/memory.stat":          "anon 100\nfile 200\nslab 5\n",
		"user.slice/m/guest/memory.current": "1\n",
	})
	levels, stat, err := MemCgroup{Dir: filepath.Join(root, "user.slice/m"), Root: root, V2: true}.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := []procview.CgroupLevel{
		{Limit: 64 << 20, Usage: 20 << 20, Swap: true, SwapLimit: 1 << 20, SwapUsage: 4096},
		{Limit: procview.Unlimited, Usage: 500000000, Swap: true, SwapLimit: procview.Unlimited},
	}
	if diff := cmp.Diff(want, levels); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]uint64{"anon": 100, "file": 200, "slab": 5}, stat); diff != "" {
		t.Errorf("stat (-want +got):\n%s", diff)
	}
}

func TestMemCgroupV1(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"a/memory.limit_in_bytes":         "9223372036854771712\n",
		"a/memory.usage_in_bytes":         "300000000\n",
		"a/m/memory.limit_in_bytes":       "67108864\n",
		"a/m/memory.usage_in_bytes":       "10485760\n",
		"a/m/memory.memsw.limit_in_bytes": "100663296\n",
		"a/m/memory.memsw.usage_in_bytes": "12582912\n",
		"a/m/memory.stat":                 "cache 1\ntotal_cache 2\ntotal_rss 3\n",
	})
	levels, stat, err := MemCgroup{Dir: filepath.Join(root, "a/m"), Root: root}.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := []procview.CgroupLevel{
		{Limit: 64 << 20, Usage: 10 << 20, Swap: true, SwapLimit: 32 << 20, SwapUsage: 2 << 20},
		{Limit: procview.Unlimited, Usage: 300000000}, // no memsw files: swap unknown
	}
	if diff := cmp.Diff(want, levels); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]uint64{"file": 2, "anon": 3}, stat); diff != "" {
		t.Errorf("stat (-want +got):\n%s", diff)
	}
}

func TestMemCgroupErrors(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"m/memory.max": "garbage\n", "m/memory.current": "1\n", "n/memory.max": "max\n", "n/memory.current": "1\n"})
	for name, c := range map[string]MemCgroup{
		"bad limit":  {Dir: filepath.Join(root, "m"), Root: root, V2: true},
		"missing":    {Dir: filepath.Join(root, "gone"), Root: root, V2: true},
		"not below":  {Dir: "/elsewhere/m", Root: root, V2: true},
		"root":       {Dir: root, Root: root, V2: true},
		"no stat":    {Dir: filepath.Join(root, "n"), Root: root, V2: true},
		"dotdot out": {Dir: filepath.Join(root, "n/../../x"), Root: root, V2: true},
	} {
		if _, _, err := c.Read(); err == nil {
			t.Errorf("%s: Read succeeded", name)
		}
	}
}

func TestCPUs(t *testing.T) {
	a, err := Affinity()
	if err != nil || a.Len() == 0 {
		t.Fatalf("Affinity() = %v, %v", a, err)
	}
	if on, err := OnlineCPUs(); err == nil && a.Intersect(on).Len() == 0 {
		t.Errorf("affinity %v shares no CPU with the online %v", a, on)
	}
}
