package childrole

import (
	"strings"
	"testing"
)

func TestOutputBounded(t *testing.T) {
	var o Output
	o.Write([]byte("hello "))
	o.Write([]byte(strings.Repeat("x", maxOutput)))
	n, err := o.Write([]byte("dropped"))
	if n != 7 || err != nil {
		t.Errorf("Write = %d, %v; want 7, nil", n, err)
	}
	s := o.String()
	if len(s) != maxOutput || !strings.HasPrefix(s, "hello x") {
		t.Errorf("String() has %d bytes, starts %q; want %d starting \"hello x\"", len(s), s[:7], maxOutput)
	}
}
