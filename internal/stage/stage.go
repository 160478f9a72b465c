// Package stage runs a start-up as an ordered list of named stages, each
// returning its undo: when a stage fails, the undos of the stages before
// it run in reverse order, so a failure at any point leaves nothing
// behind; when all succeed, the caller gets one undo for the lot.
//
// For tests, the environment variable _UMLKIT_FAIL_STAGE=NAME makes the
// stage NAME fail (with ErrInjected) before it runs: a test sets it for
// every stage in turn and checks that nothing is left.
package stage

import (
	"errors"
	"os"
)

// EnvFail names a stage to fail, for tests.
const EnvFail = "_UMLKIT_FAIL_STAGE"

// ErrInjected is the failure EnvFail injects.
var ErrInjected = errors.New("injected failure (" + EnvFail + ")")

// Stage is one step. Run does it and returns what undoes it (nil: nothing
// to undo).
type Stage struct {
	Name string
	Run  func() (undo func(), err error)
}

// Error is a stage's failure. Its text is the cause's alone, so the
// one-line messages users see do not change; errors.As gives the stage.
type Error struct {
	Stage string
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Run runs stages in order. On failure it undoes the stages that ran, in
// reverse, and returns an *Error; otherwise it returns their undo, which
// runs them in reverse (and is safe to call more than once).
func Run(stages []Stage) (undo func(), err error) {
	fail := os.Getenv(EnvFail)
	var undos []func()
	all := func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
		undos = nil
	}
	for _, s := range stages {
		var u func()
		var err error
		if s.Name == fail {
			err = ErrInjected
		} else {
			u, err = s.Run()
		}
		if err != nil {
			all()
			return func() {}, &Error{Stage: s.Name, Err: err}
		}
		if u != nil {
			undos = append(undos, u)
		}
	}
	return all, nil
}

// Names lists the stages' names.
func Names(stages []Stage) []string {
	names := make([]string, len(stages))
	for i, s := range stages {
		names[i] = s.Name
	}
	return names
}
