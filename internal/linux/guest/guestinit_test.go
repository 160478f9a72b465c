package guest

import (
	"slices"
	"testing"
)

func TestInitEnv(t *testing.T) {
	for _, tt := range []struct {
		cmdline, want []string
	}{
		{nil, []string{"HOME=/", "TERM=linux", "container=" + ContainerName}},
		{[]string{"LANG=C"}, []string{"HOME=/", "TERM=linux", "container=" + ContainerName, "LANG=C"}},
	} {
		if got := initEnv(tt.cmdline); !slices.Equal(got, tt.want) {
			t.Errorf("initEnv(%q) = %q; want %q", tt.cmdline, got, tt.want)
		}
	}
}
