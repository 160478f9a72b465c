package stage

import (
	"errors"
	"slices"
	"testing"
)

func record(log *[]string, name string, fail bool) Stage {
	return Stage{Name: name, Run: func() (func(), error) {
		if fail {
			return nil, errors.New(name + " failed")
		}
		*log = append(*log, "do "+name)
		return func() { *log = append(*log, "undo "+name) }, nil
	}}
}

func TestRunUnwinds(t *testing.T) {
	var log []string
	_, err := Run([]Stage{record(&log, "a", false), {Name: "nothing", Run: func() (func(), error) { return nil, nil }},
		record(&log, "b", false), record(&log, "c", true), record(&log, "d", false)})
	var se *Error
	if !errors.As(err, &se) || se.Stage != "c" || err.Error() != "c failed" {
		t.Fatalf("Run = %v; want the failure of stage c with its own text", err)
	}
	if want := []string{"do a", "do b", "undo b", "undo a"}; !slices.Equal(log, want) {
		t.Errorf("log = %q; want %q", log, want)
	}
}

func TestRunUndoAll(t *testing.T) {
	var log []string
	undo, err := Run([]Stage{record(&log, "a", false), record(&log, "b", false)})
	if err != nil {
		t.Fatal(err)
	}
	undo()
	undo()
	if want := []string{"do a", "do b", "undo b", "undo a"}; !slices.Equal(log, want) {
		t.Errorf("log = %q; want %q", log, want)
	}
}

func TestInjected(t *testing.T) {
	t.Setenv(EnvFail, "b")
	var log []string
	_, err := Run([]Stage{record(&log, "a", false), record(&log, "b", false)})
	if !errors.Is(err, ErrInjected) {
		t.Fatalf("Run = %v; want ErrInjected", err)
	}
	if want := []string{"do a", "undo a"}; !slices.Equal(log, want) {
		t.Errorf("log = %q; want %q", log, want)
	}
	if got := Names([]Stage{{Name: "x"}, {Name: "y"}}); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("Names = %q", got)
	}
}
