package childrole

import "sync"

// maxOutput bounds what an Output keeps.
const maxOutput = 64 << 10

// Output is a goroutine-safe buffer for a child process's output (its
// exec.Cmd Stdout/Stderr), kept for an error message: it keeps the first
// 64 KiB and drops the rest.
type Output struct {
	mu sync.Mutex // guards b
	b  []byte
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := maxOutput - len(o.b); n > 0 {
		o.b = append(o.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// String returns what was kept.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.b)
}
