package mountemu

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkFilter measures what the guest's filter costs the system calls
// it lets through (getppid, and an ioctl that is not a loop request): the
// same loop on a thread without and with the filter installed. Installing
// needs CAP_SYS_ADMIN (run as root).
func BenchmarkFilter(b *testing.B) {
	null, err := os.Open("/dev/null")
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	calls := map[string]func(){
		"getppid":      func() { unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0) },
		"ioctl-TCGETS": func() { unix.RawSyscall(unix.SYS_IOCTL, null.Fd(), unix.TCGETS, 0) },
	}
	for _, name := range []string{"getppid", "ioctl-TCGETS"} {
		call := calls[name]
		for _, filtered := range []bool{false, true} {
			sub := name + "/plain"
			if filtered {
				sub = name + "/filtered"
			}
			b.Run(sub, func(b *testing.B) {
				done := make(chan error)
				go func() {
					runtime.LockOSThread() // never unlocked: the thread dies with its filter
					if filtered {
						lis, err := Install(false)
						if err != nil {
							done <- err
							return
						}
						defer lis.Close()
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						call()
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
}

// BenchmarkTrapped measures a call the filter sends to the Server which
// lets it continue: a loop request on a file that is not an emulated loop
// device (ioctl LOOP_GET_STATUS64 on /dev/null, ENOTTY in the end).
func BenchmarkTrapped(b *testing.B) {
	srv, err := NewServer(Config{})
	if err != nil {
		b.Skip(err)
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	var buf [LoopInfo64Size]byte
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its filter
		lis, err := Install(false)
		if err != nil {
			done <- err
			return
		}
		go srv.Serve(lis)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			loopGetStatus(null.Fd(), buf[:])
		}
		b.StopTimer()
		done <- nil
	}()
	if err := <-done; err != nil {
		b.Skipf("install filter: %v", err)
	}
}

// BenchmarkTrappedBlock measures a block request the filter sends to the
// Server on a file that is none of K's devices: K takes the descriptor,
// looks it up and lets the call continue (BLKGETSIZE64 on /dev/null,
// ENOTTY in the end).
func BenchmarkTrappedBlock(b *testing.B) {
	srv, err := NewServer(Config{Block: func(dev, ino uint64) (BlockDevice, bool) { return nil, false }})
	if err != nil {
		b.Skip(err)
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	var size uint64
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its filter
		lis, err := Install(false)
		if err != nil {
			done <- err
			return
		}
		go srv.Serve(lis)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			blkGetSize64(null.Fd(), &size)
		}
		b.StopTimer()
		done <- nil
	}()
	if err := <-done; err != nil {
		b.Skipf("install filter: %v", err)
	}
}
