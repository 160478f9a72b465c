// Package progress draws a one-line progress meter (bytes done of total,
// rate, ETA) on a terminal, redrawn in place with '\r' at most a few times a
// second. It draws nothing unless told the output is a terminal (IsTerminal),
// so tools stay silent in scripts and logs.
//
// A Meter is not safe for concurrent use.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Meter renders progress to a writer.
type Meter struct {
	w      io.Writer
	label  string
	now    func() time.Time
	start  time.Time
	last   time.Time
	drawn  bool
	width  int // length of the last line, to blank leftovers
	period time.Duration
}

// New returns a meter writing to w (normally os.Stderr, a terminal).
func New(w io.Writer, label string) *Meter {
	return newMeter(w, label, time.Now)
}

func newMeter(w io.Writer, label string, now func() time.Time) *Meter {
	t := now()
	return &Meter{w: w, label: label, now: now, start: t, period: 200 * time.Millisecond}
}

// Update reports done of total bytes; it redraws at most every 200 ms, and
// always when done reaches total.
func (m *Meter) Update(done, total int64) {
	t := m.now()
	if m.drawn && done < total && t.Sub(m.last) < m.period {
		return
	}
	m.last, m.drawn = t, true
	line := Line(m.label, done, total, t.Sub(m.start))
	pad := ""
	if n := m.width - len(line); n > 0 {
		pad = fmt.Sprintf("%*s", n, "")
	}
	m.width = len(line)
	fmt.Fprintf(m.w, "\r%s%s", line, pad)
}

// Done ends the line (if anything was drawn).
func (m *Meter) Done() {
	if m.drawn {
		fmt.Fprintln(m.w)
		m.drawn = false
	}
}

// Line formats one progress line: "label  12.0 MiB / 1.0 GiB  (1%)  350.2 MiB/s  ETA 0:03".
func Line(label string, done, total int64, elapsed time.Duration) string {
	pct := 100.0
	if total > 0 {
		pct = float64(done) * 100 / float64(total)
	}
	s := fmt.Sprintf("%s  %s / %s  (%.0f%%)", label, Bytes(done), Bytes(total), pct)
	if elapsed <= 0 || done <= 0 {
		return s
	}
	rate := float64(done) / elapsed.Seconds()
	s += fmt.Sprintf("  %s/s", Bytes(int64(rate)))
	if done < total && rate > 0 {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second)
		s += "  ETA " + clock(eta)
	}
	return s
}

func clock(d time.Duration) string {
	sec := int64(d / time.Second)
	if sec >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", sec/3600, sec/60%60, sec%60)
	}
	return fmt.Sprintf("%d:%02d", sec/60, sec%60)
}

// Bytes formats n with binary units: "512 B", "1.5 KiB", "3.0 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
