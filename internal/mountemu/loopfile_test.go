package mountemu

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoopFileWindow(t *testing.T) {
	s, err := NewServer(Config{Loops: []string{"loop0"}})
	if err != nil {
		t.Skip(err)
	}
	lf := s.LoopFile(0)
	if lf.Size() != 0 || lf.ReadOnly() {
		t.Errorf("free loop: Size() = %d, ReadOnly() = %v; want 0, false", lf.Size(), lf.ReadOnly())
	}
	if _, err := lf.ReadAt(make([]byte, 1), 0); err == nil {
		t.Error("ReadAt on a free loop succeeded")
	}
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, []byte("0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.loops[0] = loopDev{backing: f, info: LoopInfo{Offset: 4, Sizelimit: 8}}
	defer f.Close()
	if n := lf.Size(); n != 8 {
		t.Errorf("Size() = %d; want 8 (sizelimit)", n)
	}
	buf := make([]byte, 16)
	n, err := lf.ReadAt(buf, 2)
	if err != nil || string(buf[:n]) != "6789ab" {
		t.Errorf("ReadAt(off 2) = %q, %v; want \"6789ab\"", buf[:n], err)
	}
	if n, err := lf.WriteAt([]byte("XYZ"), 6); err != nil || n != 2 {
		t.Errorf("WriteAt at the window's end = %d, %v; want 2 bytes", n, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "0123456789XYcdef" {
		t.Errorf("backing file after WriteAt = %q", b)
	}
	s.loops[0].info.Flags |= LoFlagsReadOnly
	if !lf.ReadOnly() {
		t.Error("read-only binding not reported")
	}
	if _, err := lf.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on a read-only binding succeeded")
	}
}
