package e2e

// Command-line words the kernel owns (issue 19): mem= and vecN: stay in the
// "Kernel command line:" line scripts parse, but are neither listed as
// unknown nor handed to init; a vecN: device this build cannot set up gets
// one boot-log line with UML's vector_setup prefix.

import (
	"strings"
	"testing"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

const cmdlineInit = `echo "INIT-ARGS=[$*]"
env | grep -E '^(mem|vec|foo)' | sed 's/^/INIT-ENV /'
echo CMDLINE-DONE
poweroff -f
`

func TestIntegrationLinuxCmdlineKernelWords(t *testing.T) {
	testutil.RequireRoot(t)
	requireLinuxHost(t)
	img := harness.BusyboxImage(t, t.TempDir(), harness.Image{Init: cmdlineInit})
	g := harness.BootLinux(t, img, "mem=64M", "foo=bar", "vec0:transport=zzz,ifname=umlvec0", "vec2=x")
	if err := g.WaitOutput("CMDLINE-DONE", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Wait(bootTimeout); err != nil {
		t.Fatal(err)
	}
	out := g.Output()
	for _, want := range []string{
		"Kernel command line: ubd0=",
		" mem=64M foo=bar vec0:transport=zzz,ifname=umlvec0 vec2=x root=98:0 console=tty0",
		"vector_setup - Couldn't parse '2=x' : Expected ':' after device number",
		"Choosing a random ethernet address for device vec0", // as linux.uml: the MAC first, whatever the transport
		"vec0: unknown transport 'zzz'",
		"INIT-ENV foo=bar",
		"INIT-ARGS=[]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("boot log lacks %q", want)
		}
	}
	unknown := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Unknown kernel command line parameters ") {
			unknown = l
		}
	}
	if !strings.Contains(unknown, "foo=bar") || strings.Contains(unknown, "mem=") || strings.Contains(unknown, "vec") {
		t.Errorf("unknown-parameters line = %q; want foo=bar and neither mem= nor vecN:", unknown)
	}
	for _, bad := range []string{"INIT-ENV mem", "INIT-ENV vec"} {
		if strings.Contains(out, bad) {
			t.Errorf("boot log has %q: mem= and vecN: must reach neither the unknown list nor init", bad)
		}
	}
	if n := strings.Count(out, "vec0: unknown transport"); n != 1 {
		t.Errorf("%d vec0 lines; want 1", n)
	}
}
