package watchdogproto

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var parseTests = []struct {
	args []string
	want Args
	err  error
}{
	{[]string{"-pid", "123"}, Args{Mode: ModePid, Pid: 123}, nil},
	{[]string{"-pid", "0x10"}, Args{Mode: ModePid, Pid: 16}, nil},
	{[]string{"-pid", "010"}, Args{Mode: ModePid, Pid: 8}, nil},
	{[]string{"-pid", " -5"}, Args{Mode: ModePid, Pid: -5}, nil},
	{[]string{"-pid", "12x"}, Args{}, ErrUsage},
	{[]string{"-pid", "1 "}, Args{}, ErrUsage},
	{[]string{"-pid", "+-1"}, Args{}, ErrUsage},
	{[]string{"-mconsole", "/tmp/n", "extra"}, Args{Mode: ModeMconsole, Socket: "/tmp/n"}, nil},
	{[]string{"-pid"}, Args{}, ErrUsage},
	{[]string{"--pid", "1"}, Args{}, ErrUsage},
	{nil, Args{}, ErrUsage},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		got, err := Parse(tt.args)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tt.args, got, err, tt.want, tt.err)
		}
	}
	if got := (Args{Mode: ModeMconsole, Socket: "/s"}).Argv(); !cmp.Equal(got, []string{"-mconsole", "/s"}) {
		t.Errorf("Argv = %q", got)
	}
	if got := (Args{Mode: ModePid, Pid: 42}).Argv(); !cmp.Equal(got, []string{"-pid", "42"}) {
		t.Errorf("Argv = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		if len(tt.args) >= 2 {
			f.Add(tt.args[0], tt.args[1])
		}
	}
	f.Fuzz(func(t *testing.T, opt, val string) {
		a, err := Parse([]string{opt, val})
		if err != nil {
			return
		}
		b, err := Parse(a.Argv())
		if err != nil || b != a {
			t.Fatalf("Parse(Argv(%+v)) = %+v, %v", a, b, err)
		}
	})
}
