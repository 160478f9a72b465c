package guide

import (
	"regexp"
	"testing"
	"time"
)

// TestIntegrationGuideMconsole: chapter 3.
func TestIntegrationGuideMconsole(t *testing.T) {
	requireLinux(t)
	s := newSession(t)
	s.run("boot-mkrootfs")
	g := s.start("mc-boot")
	s.waitPrompt(g, 1)
	want(t, "mc-boot", g.Output(), "mconsole (version 2) initialized on "+s.dir+"/.home/.uml/vm1/mconsole")
	if out := s.run("mc-version"); !regexp.MustCompile(`^OK Linux uml \S+ `).MatchString(out) {
		t.Errorf("mc-version: %q; want OK Linux uml RELEASE ...", out)
	}
	out := s.run("mc-list")
	if !regexp.MustCompile(`(?m)^UMID +PID +STATE +MEMORY +SOCKET\nvm1 +\d+ +alive +[0-9.]+[KMG] +` + regexp.QuoteMeta(s.dir+"/.home/.uml/vm1/mconsole") + `\n`).MatchString(out) {
		t.Errorf("mc-list:\n%s", out)
	}
	want(t, "mc-help", s.run("mc-help"), "OK ", "version", "halt", "reboot", "sysrq", "stack")
	want(t, "mc-stop", s.run("mc-stop"), "OK stopped\nOK \n")
	want(t, "mc-proc", s.run("mc-proc"), "Name:\t", "Pid:\t1\n")
	want(t, "mc-config", s.run("mc-config"), "OK root_fs\nOK fd:0,fd:1\n")
	want(t, "mc-hotplug", s.run("mc-hotplug"), "OK \n")
	want(t, "mc-hotplug-guest", s.typeIn(g, "mc-hotplug-guest"), " 16777216 ", "/dev/ubdb")
	want(t, "mc-remove", s.run("mc-remove"), "OK \nERR Device doesn't exist\n")
	want(t, "mc-sysrq", s.run("mc-sysrq"), "OK sysrq: Emergency Sync\n\n", "OK sysrq: Show State\n", "task:init ", " pid:1     ppid:0 ")
	want(t, "mc-sysrq console", g.Output(), "sysrq: Emergency Sync", "sysrq: Show State")
	want(t, "mc-stack", s.run("mc-stack"), "OK Stack:\n", "Call Trace:\n")
	want(t, "mc-reboot", s.run("mc-reboot"), "OK ")
	s.waitPrompt(g, 2)
	want(t, "mc-halt", s.run("mc-halt"), "OK ")
	code, err := g.Wait(60 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("linux after mconsole halt: exit %d, %v; want 0", code, err)
	}
}
