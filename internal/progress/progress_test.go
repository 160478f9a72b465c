package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	for _, tt := range []struct {
		done, total int64
		el          time.Duration
		want        string
	}{
		{0, 1 << 30, 0, "merge  0 B / 1.0 GiB  (0%)"},
		{256 << 20, 1 << 30, time.Second, "merge  256.0 MiB / 1.0 GiB  (25%)  256.0 MiB/s  ETA 0:03"},
		{1 << 30, 1 << 30, 4 * time.Second, "merge  1.0 GiB / 1.0 GiB  (100%)  256.0 MiB/s"},
		{1, 7200, time.Second, "merge  1 B / 7.0 KiB  (0%)  1 B/s  ETA 1:59:59"},
	} {
		if got := Line("merge", tt.done, tt.total, tt.el); got != tt.want {
			t.Errorf("Line(%d, %d, %v) = %q; want %q", tt.done, tt.total, tt.el, got, tt.want)
		}
	}
}

func TestMeterThrottlesAndEnds(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	m := newMeter(&buf, "x", func() time.Time { return now })
	m.Update(0, 100)
	now = now.Add(50 * time.Millisecond)
	m.Update(10, 100) // throttled
	now = now.Add(200 * time.Millisecond)
	m.Update(20, 100)
	m.Update(100, 100) // final: always drawn
	m.Done()
	if n := strings.Count(buf.String(), "\r"); n != 3 {
		t.Errorf("%d redraws; want 3:\n%q", n, buf.String())
	}
	if !strings.HasSuffix(buf.String(), "\n") || !strings.Contains(buf.String(), "(100%)") {
		t.Errorf("output %q does not end with the final line", buf.String())
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("IsTerminal(regular file) = true")
	}
}
