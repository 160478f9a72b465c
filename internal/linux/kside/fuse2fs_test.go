package kside

import (
	"slices"
	"strings"
	"testing"
)

func TestFuse2fsArgs(t *testing.T) {
	args := fuse2fsMount{Image: "/dev/fd/3", Dir: "/mnt", Name: `/img,x\y`, ReadOnly: true, Offset: 1048576}.args()
	if len(args) != 5 || args[0] != "/dev/fd/3" || args[1] != "/mnt" || args[2] != "-f" || args[3] != "-o" {
		t.Fatalf("args = %q", args)
	}
	opts := strings.Split(strings.ReplaceAll(args[4], `\,`, "\x00"), ",")
	// fuse2fs's own defaults would come after ours and override them.
	if opts[0] != "no_default_opts" {
		t.Errorf("first option %q, want no_default_opts", opts[0])
	}
	for _, want := range []string{"fsname=/img\x00x\\\\y", "subtype=ext4", "allow_other", "suid", "dev", "use_ino", "auto_cache",
		"big_writes", "attr_timeout=0", "entry_timeout=86400", "negative_timeout=86400", "ro", "offset=1048576"} {
		if !slices.Contains(opts, want) {
			t.Errorf("options %q lack %q", args[4], want)
		}
	}
	if slices.Contains(opts, "kernel_cache") {
		t.Errorf("kernel_cache serves stale data through a second hard link: %q", args[4])
	}
	rw := fuse2fsMount{Image: "/a", Dir: "/b"}.args()
	if strings.Contains(rw[4], ",ro") || strings.Contains(rw[4], "offset=") || !strings.Contains(rw[4], "fsname=/a,") {
		t.Errorf("read-write mount options %q", rw[4])
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n\n  b \nc\n"); got != "a b c" {
		t.Errorf("oneLine = %q; want %q", got, "a b c")
	}
}
