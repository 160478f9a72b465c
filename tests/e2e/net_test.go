package e2e

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/umlkit/umlkit/internal/testutil"
	"github.com/umlkit/umlkit/tests/harness"
)

// TestIntegrationTunctlMatchesReal runs the same sequence of tunctl command
// lines with our tunctl and Debian's, each in its own fresh network
// namespace, both found as plain "tunctl" through PATH (same argv[0]), and
// compares stdout, stderr and exit status byte for byte. Device names are
// not normalised: each namespace starts empty, so the kernel picks the same
// names.
func TestIntegrationTunctlMatchesReal(t *testing.T) {
	real := testutil.Peer(t, "tunctl", "uml-utilities")
	ours := harness.Bin(t, "tunctl")
	testutil.RequireTUN(t)
	nsOurs, nsReal := testutil.NetNS(t), testutil.NetNS(t)
	pathOurs := harness.PathDir(t, "tunctl", ours)
	pathReal := harness.PathDir(t, "tunctl", real)
	steps := [][]string{
		{},
		{"-b"},
		{"-t", "umltap0"},
		{"-b", "-t", "foo"},
		{"-u", "nobody", "-t", "t2"},
		{"-u", "0x10", "-t", "t3"},
		{"-u", "bogus"},
		{"-g", "bogus"},
		{"-g", "100", "-t", "t4"},
		{"-u", "nobody", "-g", "nogroup", "-t", "t5"},
		{"-u", "root", "-g", "root", "-b"},
		{"-d", "t5"},
		{"-d", "nonexist9"},
		{"-b", "-d", "t4"},
		{"-h"},
		{"-x"},
		{"-p"},
		{"-n"},
		{"--foo"},
		{"extra"},
		{"-t", "t9", "extra"},
		{"--", "-t", "x"},
		{"-t"},
		{"-d"},
		{"-f", "/nonexistent/tun"},
		{"-f", "/dev/null", "-t", "t15"},
		{"-t", "a/b"},
		{"-t", "a b"},
		{"-t", "aaaaaaaaaaaaaaaaaaaa"},
		{"-u", "-5", "-t", "t6"},
		{"-u", "12abc", "-t", "t7"},
		{"-g", "", "-t", "t8"},
		{"-t", "tun%d"},
		{"-u", "1000", "-t", "t2"},
		{"-bt", "t10"},
		{"-tt11"},
		{"-d", "t10", "-t", "t12"},
		{"-t", "t13", "-d", "t13"},
		{"-u", "1", "-u", "2", "-t", "t14"},
		{"-b"},
	}
	for _, args := range steps {
		argv := append([]string{"tunctl"}, args...)
		got := harness.RunInNetNS(t, nsOurs, []string{"PATH=" + pathOurs + ":/usr/bin:/bin"}, argv...)
		want := harness.RunInNetNS(t, nsReal, []string{"PATH=" + pathReal + ":/usr/bin:/bin"}, argv...)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("tunctl %q differs from Debian's (-real +ours):\n%s", args, d)
		}
	}
	// The resulting devices are the same too (name, owner, group, persist).
	links := func(ns string) string {
		r := harness.RunInNetNS(t, ns, nil, "ip", "-d", "-o", "link", "show", "type", "tun")
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			b.WriteString(f[1])
			for i, w := range f {
				if (w == "user" || w == "group" || w == "persist" || w == "type") && i+1 < len(f) && f[i-1] != "link/ether" {
					b.WriteString(" " + w + "=" + f[i+1])
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if d := cmp.Diff(links(nsReal), links(nsOurs)); d != "" {
		t.Errorf("devices differ (-real +ours):\n%s", d)
	}
	if !strings.Contains(links(nsOurs), "t14:") {
		t.Errorf("expected device t14 in:\n%s", links(nsOurs))
	}
}
