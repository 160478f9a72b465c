package cmdline

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSpecExample(t *testing.T) {
	// shared/spec/cmdline.md §1, observed on linux.uml 6.1.
	c, err := Parse(strings.Fields("mem=64M umid=t1 uml_dir=/x ubd0=root.img root=/dev/ubda con0=fd:0,fd:1 con=null ssl=null"))
	if err != nil {
		t.Fatal(err)
	}
	want := "mem=64M uml_dir=/x ubd0=root.img root=/dev/ubda con0=fd:0,fd:1 con=null ssl=null console=tty0"
	if c.GuestLine != want {
		t.Errorf("GuestLine = %q; want %q", c.GuestLine, want)
	}
	if c.Umid != "t1" || c.UmlDir != "/x" || c.Mem != 64<<20 || c.Root != "/dev/ubda" {
		t.Errorf("Parse = umid %q dir %q mem %d root %q", c.Umid, c.UmlDir, c.Mem, c.Root)
	}
	// linux.uml passes mem=64M on too; here it is a kernel option (package doc).
	if diff := cmp.Diff([]string{"uml_dir=/x"}, c.InitEnv); diff != "" {
		t.Errorf("InitEnv (-want +got):\n%s", diff)
	}
	if s, ok := c.ConsoleSpec(0); !ok || s != "fd:0,fd:1" {
		t.Errorf("ConsoleSpec(0) = %q, %v", s, ok)
	}
	if s, ok := c.ConsoleSpec(3); !ok || s != "null" {
		t.Errorf("ConsoleSpec(3) = %q, %v; want null from con=", s, ok)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.GuestLine != "root=98:0 console=tty0" || c.Ubd[0].File != "root_fs" || c.Ubd[0].Specified {
		t.Errorf("Parse(nil) = %q, ubd0 %+v", c.GuestLine, c.Ubd[0])
	}
}

func TestInitArgsAndEnv(t *testing.T) {
	c, err := Parse(strings.Fields("init=/bin/sh single foo=bar quiet mod.param=1 -- -x y=z"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Init != "/bin/sh" || !c.Quiet {
		t.Errorf("init %q quiet %v", c.Init, c.Quiet)
	}
	if diff := cmp.Diff([]string{"single", "-x", "y=z"}, c.InitArgs); diff != "" {
		t.Errorf("InitArgs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"foo=bar"}, c.InitEnv); diff != "" {
		t.Errorf("InitEnv (-want +got):\n%s", diff)
	}
}

func TestUbd(t *testing.T) {
	tests := []struct {
		arg  string
		want Ubd
		warn string
	}{
		{"ubd0=root.img", Ubd{Unit: 0, File: "root.img", Specified: true}, ""},
		{"ubdb=cow,back", Ubd{Unit: 1, File: "cow", Backing: "back", Specified: true}, ""},
		{"ubd2rsc=a:b:serial", Ubd{Unit: 2, ReadOnly: true, Sync: true, Shared: true, File: "a", Backing: "b", Serial: "serial", Specified: true}, ""},
		{"ubd3t=x,,S", Ubd{Unit: 3, NoTrim: true, File: "x", Serial: "S", Specified: true}, ""},
		{"ubd0x4=y", Ubd{Unit: 4, File: "y", Specified: true}, ""},
		{"ubd16=z", Ubd{}, `Failed to initialize device with "ubd16=z" : Device number out of range`},
		{"ubd5q=z", Ubd{}, `Failed to initialize device with "ubd5q=z" : Expected '=' or flag letter (r, s, c, t or d)`},
		{"ubd5", Ubd{}, `Failed to initialize device with "ubd5" : Missing '='`},
		{"ubd5d=a,b", Ubd{}, `Failed to initialize device with "ubd5d=a,b" : Can't specify both 'd' and a cow file`},
		{"ubd=foo", Ubd{}, `Failed to initialize device with "ubd=foo" : fake major not supported any more`},
	}
	for _, tt := range tests {
		c, err := Parse([]string{tt.arg})
		if err != nil {
			t.Fatal(err)
		}
		if tt.warn != "" {
			if len(c.Warnings) != 1 || c.Warnings[0] != tt.warn {
				t.Errorf("Parse(%q) warnings = %q; want %q", tt.arg, c.Warnings, tt.warn)
			}
			continue
		}
		got := c.Ubd[tt.want.Unit]
		if got == nil || *got != tt.want {
			t.Errorf("Parse(%q) ubd = %+v; want %+v", tt.arg, got, tt.want)
		}
	}
}

func TestMemParse(t *testing.T) {
	for in, want := range map[string]uint64{"64M": 64 << 20, "1g": 1 << 30, "4096": 4096, "0x1000": 4096, "128k": 128 << 10} {
		if got, err := MemParse(in); err != nil || got != want {
			t.Errorf("MemParse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "12Q"} {
		if _, err := MemParse(bad); err == nil {
			t.Errorf("MemParse(%q) succeeded; want error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"ubd0=a,b", "mem=64M umid=x", "con1=pts ssl=null", "ubd2rsc=a:b:s -- x", "eth0=daemon,,unix,/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.Fields(s))
		if err != nil {
			return
		}
		if !strings.Contains(c.GuestLine, "root=") || !strings.Contains(c.GuestLine, "console=") {
			t.Errorf("GuestLine %q lacks root= or console=", c.GuestLine)
		}
	})
}

// TestMemIsKernelOption: mem= stays in the kernel command line (scripts read
// "Kernel command line:") but is neither unknown nor init's environment.
func TestMemIsKernelOption(t *testing.T) {
	c, err := Parse(strings.Fields("mem=64M init=/init foo=bar"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "mem=64M init=/init foo=bar root=98:0 console=tty0"; c.GuestLine != want {
		t.Errorf("GuestLine = %q; want %q", c.GuestLine, want)
	}
	if c.Mem != 64<<20 || c.MemText != "64M" {
		t.Errorf("Mem = %d (%q); want 64 MiB", c.Mem, c.MemText)
	}
	if diff := cmp.Diff([]string{"foo=bar"}, c.Unknown); diff != "" {
		t.Errorf("Unknown (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"foo=bar"}, c.InitEnv); diff != "" {
		t.Errorf("InitEnv (-want +got):\n%s", diff)
	}
	if _, err := Parse([]string{"mem=lots"}); err == nil {
		t.Errorf("Parse(mem=lots) = nil error; want a usage error")
	}
}

// TestVec: vecN: words are the vector driver's (UML's vector_setup): never
// unknown, never init's, parse errors in UML's words (verified on
// linux.uml 6.1: vec2=x, vecx:foo).
func TestVec(t *testing.T) {
	c, err := Parse(strings.Fields("vec0:transport=tap,ifname=t0 vec0x5:transport=raw,ifname=e0 vec2=x vecx:foo vec0:transport=gre vec1_0:x vec3:transport=tap,a=b=c vec4:a=b=c,transport=tap vec6:abc,transport=tap"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int]string{0: "transport=tap,ifname=t0", 5: "transport=raw,ifname=e0", 6: "abc,transport=tap"}, c.Vec); diff != "" {
		t.Errorf("Vec (-want +got):\n%s", diff)
	}
	want := []string{
		"vector_setup - Couldn't parse '2=x' : Expected ':' after device number",
		"vector_setup - Couldn't parse 'x' : Bad device number",
		"vector_setup - Couldn't parse '0' : Device already configured",
		"vector_setup - Couldn't parse '1_0' : Bad device number",
		"vector_setup - Couldn't parse 'transport'", // a value with a second '=': UML names the spec up to its first '='
		"vector_setup - Couldn't parse 'a'",
	}
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("Warnings (-want +got):\n%s", diff)
	}
	if len(c.Unknown) != 0 || len(c.InitEnv) != 0 || len(c.InitArgs) != 0 {
		t.Errorf("Unknown %q, InitEnv %q, InitArgs %q; want vec words kept from init", c.Unknown, c.InitEnv, c.InitArgs)
	}
	if !strings.HasPrefix(c.GuestLine, "vec0:transport=tap,ifname=t0 vec0x5:") {
		t.Errorf("GuestLine = %q; want the vec words kept", c.GuestLine)
	}
}

// initrd= and rdinit= are kernel options: they stay in the command line
// and reach neither init's environment nor the unknown list (linux.uml 6.1).
func TestInitrd(t *testing.T) {
	c, err := Parse(strings.Fields("initrd=/img.gz rdinit=/linuxrc noinitrd retain_initrd initramfs_async=0 x=y"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Initrd != "/img.gz" || c.RDInit != "/linuxrc" {
		t.Errorf("Initrd %q RDInit %q", c.Initrd, c.RDInit)
	}
	if diff := cmp.Diff([]string{"x=y"}, c.Unknown); diff != "" {
		t.Errorf("Unknown (-want +got):\n%s", diff)
	}
	if want := "initrd=/img.gz rdinit=/linuxrc noinitrd retain_initrd initramfs_async=0 x=y root=98:0 console=tty0"; c.GuestLine != want {
		t.Errorf("GuestLine = %q; want %q", c.GuestLine, want)
	}
}

// TestCleanup: --cleanup is ours, consumed before "--" only (after it, it
// is one of init's arguments) and never part of the guest's command line.
func TestCleanup(t *testing.T) {
	for _, tt := range []struct {
		line     string
		cleanup  bool
		initArgs []string
	}{
		{"--cleanup", true, nil},
		{"uml_dir=/tmp/u --cleanup", true, nil},
		{"init=/bin/sh -- --cleanup", false, []string{"--cleanup"}},
		{"cleanup", false, []string{"cleanup"}},
		{"--cleanup=yes", false, nil},
	} {
		c, err := Parse(strings.Fields(tt.line))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.line, err)
		}
		if c.Cleanup != tt.cleanup || !cmp.Equal(c.InitArgs, tt.initArgs) {
			t.Errorf("Parse(%q) = Cleanup %v, InitArgs %q; want %v, %q", tt.line, c.Cleanup, c.InitArgs, tt.cleanup, tt.initArgs)
		}
		if tt.cleanup && strings.Contains(c.GuestLine, "cleanup") {
			t.Errorf("Parse(%q): GuestLine %q has --cleanup", tt.line, c.GuestLine)
		}
	}
}
