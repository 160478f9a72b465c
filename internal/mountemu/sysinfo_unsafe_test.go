//go:build amd64

package mountemu

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/umlkit/umlkit/internal/testutil"
)

// TestSysinfoLayout decodes the kernel's own struct sysinfo.
func TestSysinfoLayout(t *testing.T) {
	var k unix.Sysinfo_t
	if err := unix.Sysinfo(&k); err != nil {
		t.Fatal(err)
	}
	if unsafe.Sizeof(k) != SysinfoSize {
		t.Fatalf("sizeof(struct sysinfo) = %d; SysinfoSize %d", unsafe.Sizeof(k), SysinfoSize)
	}
	var si Sysinfo
	if err := si.UnmarshalBinary(unsafe.Slice((*byte)(unsafe.Pointer(&k)), unsafe.Sizeof(k))); err != nil {
		t.Fatal(err)
	}
	if si.Uptime != k.Uptime || si.TotalRAM != k.Totalram || si.FreeSwap != k.Freeswap || si.Procs != k.Procs || si.MemUnit != k.Unit || si.Loads != k.Loads {
		t.Errorf("decoded %+v from the kernel's %+v", si, k)
	}
}

// sysinfo is sysinfo(2) through unix.Syscall: x/sys makes it a raw
// system call (the goroutine keeps its P), and a trapped call in this very
// process would then block the garbage collector's stop-the-world that the
// Server answering it may need (a guest is another process; tests are not).
func sysinfo(si *unix.Sysinfo_t) error {
	if _, _, e := unix.Syscall(unix.SYS_SYSINFO, uintptr(unsafe.Pointer(si)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// TestIntegrationSysinfo: with sysinfo trapped, the Server's figures are
// what sysinfo(2) returns; without Config.Sysinfo the call runs natively.
func TestIntegrationSysinfo(t *testing.T) {
	testutil.RequireRoot(t)
	want := Sysinfo{Uptime: 42, Loads: [3]uint64{1, 2, 3}, TotalRAM: 64 << 20, FreeRAM: 60 << 20, SharedRAM: 1, BufferRAM: 2,
		TotalSwap: 3, FreeSwap: 4, Procs: 5, MemUnit: 1}
	for _, fake := range []bool{true, false} {
		cfg := Config{}
		if fake {
			cfg.Sysinfo = func() (Sysinfo, error) { return want, nil }
		}
		srv, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			si  unix.Sysinfo_t
			err error
		}
		done := make(chan result)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with its filter
			lis, err := Install(true)
			if err != nil {
				done <- result{err: err}
				return
			}
			go srv.Serve(lis)
			var r result
			r.err = sysinfo(&r.si)
			done <- r
		}()
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := Sysinfo{Uptime: r.si.Uptime, Loads: r.si.Loads, TotalRAM: r.si.Totalram, FreeRAM: r.si.Freeram, SharedRAM: r.si.Sharedram,
			BufferRAM: r.si.Bufferram, TotalSwap: r.si.Totalswap, FreeSwap: r.si.Freeswap, Procs: r.si.Procs, MemUnit: r.si.Unit}
		if fake && got != want {
			t.Errorf("trapped sysinfo = %+v; want %+v", got, want)
		}
		if !fake && (got.TotalRAM == want.TotalRAM || got.TotalRAM == 0) {
			t.Errorf("without Config.Sysinfo: %+v; want the host's", got)
		}
	}
}

// BenchmarkSysinfo measures sysinfo(2) answered by the Server (the
// machine's memory, Config.Sysinfo) against the host's own.
func BenchmarkSysinfo(b *testing.B) {
	for _, trapped := range []bool{false, true} {
		name := map[bool]string{false: "native", true: "trapped"}[trapped]
		b.Run(name, func(b *testing.B) {
			srv, err := NewServer(Config{Sysinfo: func() (Sysinfo, error) { return Sysinfo{TotalRAM: 64 << 20, MemUnit: 1}, nil }})
			if err != nil {
				b.Skip(err)
			}
			done := make(chan error)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread dies with its filter
				if trapped {
					lis, err := Install(true)
					if err != nil {
						done <- err
						return
					}
					go srv.Serve(lis)
				}
				var si unix.Sysinfo_t
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					sysinfo(&si)
				}
				b.StopTimer()
				done <- nil
			}()
			if err := <-done; err != nil {
				b.Skipf("install filter: %v", err)
			}
		})
	}
}
