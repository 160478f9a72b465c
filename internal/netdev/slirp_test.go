package netdev

import (
	"fmt"
	"reflect"
	"testing"
)

func TestSlirpArgv(t *testing.T) {
	for _, c := range []struct {
		fields []string
		want   []string
	}{
		{nil, []string{"slirp"}},
		{[]string{""}, []string{"slirp"}},
		{[]string{"", "host_addr_127.0.0.1"}, []string{"slirp", "host addr 127.0.0.1"}},
		{[]string{"/opt/my_slirp", "-P"}, []string{"/opt/my slirp", "-P"}},
	} {
		got, trunc := slirpArgv(c.fields)
		if !reflect.DeepEqual(got, c.want) || trunc {
			t.Errorf("slirpArgv(%q) = %q, %v; want %q", c.fields, got, trunc, c.want)
		}
	}
	var many []string
	for i := 0; i < 120; i++ {
		many = append(many, fmt.Sprint(i))
	}
	got, trunc := slirpArgv(many)
	if len(got) != maxSlirpArgs || !trunc {
		t.Errorf("120 fields: %d entries, truncated %v; want %d, true", len(got), trunc, maxSlirpArgs)
	}
	if l := slirpLines([]string{"slirp", "a b"}); !reflect.DeepEqual(l, []string{"SLIRP backend - command line:", " 'slirp'", " 'a b'"}) {
		t.Errorf("slirpLines = %q", l)
	}
}
