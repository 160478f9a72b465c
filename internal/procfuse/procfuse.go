//go:build linux

// Package procfuse serves the machine's /proc views (rendered by
// internal/procview) as read-only files through a small go-fuse file
// system in K, which G binds over the guest's /proc files, and reads the
// host facts they are rendered from (host.go).
//
// Each open renders the file once for its handle, and every read of the
// handle serves that text, so one read(2) loop sees one consistent text,
// as the kernel's seq_file gives it; a read at offset 0 after that (a
// re-read after lseek(0), as procps's top does with the files it keeps
// open) renders afresh. Reads are direct I/O, but the kernel serves
// sendfile(2) and splice(2) — busybox's cat — from the page cache up to
// the inode's size: so an open also drops the file's cached pages and
// stores the text's last byte at its place (FUSE_NOTIFY_STORE), which
// makes the size at least the text's; the short read at its end then
// sets it exactly. Two readers that open the same view at once may see
// each other's (complete) text through sendfile; read(2) always sees its
// own.
//
// What handles keep is bounded (MaxPinned over all of them, beyond which
// reads render without keeping), renders run at most maxRenders at a
// time, and a render reads at most procview.MaxInput bytes of a host
// file: a guest opening many handles or reading without end costs K no
// more than its own reads.
//
// Read-only: the mount is MS_RDONLY, files are 0444 root:root, an open
// for writing gets EACCES and a chmod, chown, truncate or utimes EPERM,
// whatever the caller's credentials (guest root included).
//
// Lifetime: Mount returns a Server; Close unmounts and waits for the
// server loop to end.
package procfuse

import (
	"context"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MaxPinned bounds the bytes all open handles keep between reads.
const MaxPinned = 32 << 20

// maxRenders is how many renders run at once; others wait.
const maxRenders = 2

// File is one view.
type File struct {
	Name string
	// Render returns the file's text at the moment of the call. It is
	// called from several goroutines.
	Render func() []byte
	// Static: Render's text never changes; it is rendered once and its
	// size is the file's (other views show size 0, as /proc does).
	Static bool
}

// Server is a mounted set of views.
type Server struct {
	srv     *fuse.Server
	dir     string
	start   time.Time
	renders chan struct{} // semaphore of maxRenders
	pinned  atomic.Int64  // bytes kept by open handles
	max     int64         // MaxPinned (tests lower it); set before the mount
}

// Mount serves files in dir (an existing empty directory).
func Mount(dir string, files []File) (*Server, error) { return mount(dir, files, MaxPinned) }

// mount is Mount keeping at most maxPinned bytes between reads.
func mount(dir string, files []File, maxPinned int64) (*Server, error) {
	s := &Server{dir: dir, start: time.Now(), renders: make(chan struct{}, maxRenders), max: maxPinned}
	root := &dirNode{}
	long := time.Hour // nothing here changes its attributes
	opts := &fs.Options{
		EntryTimeout: &long,
		AttrTimeout:  &long,
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			Options:           []string{"default_permissions"},
			FsName:            "procview",
			Name:              "procview",
			DirectMount:       true,
			DirectMountStrict: true,
			DirectMountFlags:  syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC,
			DisableXAttrs:     true,
			Logger:            log.New(io.Discard, "", 0),
		},
		OnAdd: func(ctx context.Context) {
			for _, f := range files {
				n := &fileNode{s: s, f: f}
				if f.Static {
					n.static = f.Render()
				}
				root.AddChild(f.Name, root.NewPersistentInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG}), true)
			}
		},
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount /proc views on %s: %w", dir, err)
	}
	s.srv = srv
	return s, nil
}

// Path is the host path of the view name.
func (s *Server) Path(name string) string { return filepath.Join(s.dir, name) }

// Close unmounts the views and waits for the server loop to end.
func (s *Server) Close() error {
	err := s.srv.Unmount()
	s.srv.Wait()
	return err
}

type dirNode struct{ fs.Inode }

var (
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*dirNode)(nil)
)

func (d *dirNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 2
	return 0
}

// Statfs reports an empty file system of no blocks, so df leaves it out
// unless asked for every file system.
func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	return 0
}

type fileNode struct {
	fs.Inode
	s      *Server
	f      File
	static []byte       // Static files' text
	last   atomic.Int64 // length of the last text rendered
}

var (
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
)

func (n *fileNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Nlink = 1
	out.Size = uint64(len(n.static))
	if !n.f.Static {
		// the text this handle reads (fstat), else the last one
		out.Size = uint64(n.last.Load())
		if h, ok := f.(*handle); ok {
			if l := h.length(); l >= 0 {
				out.Size = uint64(l)
			}
		}
	}
	out.Blksize = 1024
	out.SetTimes(&n.s.start, &n.s.start, &n.s.start)
	return 0
}

func (n *fileNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EPERM
}

// writeFlags are the open flags that would change a file.
const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		return nil, 0, syscall.EACCES
	}
	h := &handle{n: n}
	if !n.f.Static {
		text, errno := n.s.render(ctx, n.f)
		if errno != 0 {
			return nil, 0, errno
		}
		h.keep(text)
		// For sendfile and splice (see the package comment): no page
		// of an earlier text stays, and the size covers this one.
		n.NotifyContent(0, 0)
		if len(text) > 0 {
			n.WriteCache(int64(len(text)-1), text[len(text)-1:])
		}
	}
	// Direct I/O: every read reaches Read (the size shown is not the
	// text's), and nothing of the guest's is kept in the page cache.
	return h, fuse.FOPEN_DIRECT_IO, 0
}

// handle is an open view: the text rendered at its open or at its last
// read at offset 0.
type handle struct {
	n    *fileNode
	mu   sync.Mutex // guards data, read
	data []byte     // kept text (counted in Server.pinned), or nil
	read bool       // data has been read from
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

// keep makes text the handle's, when MaxPinned allows; h.mu is held or h
// not yet shared.
func (h *handle) keep(text []byte) {
	h.unpin()
	h.n.last.Store(int64(len(text)))
	if s := h.n.s; s.pinned.Add(int64(len(text))) <= s.max {
		h.data = text
	} else {
		s.pinned.Add(-int64(len(text))) // served, not kept
	}
}

// length is the length of the handle's text, -1 when it keeps none.
func (h *handle) length() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data == nil {
		return -1
	}
	return len(h.data)
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if h.n.f.Static {
		return fuse.ReadResultData(slice(h.n.static, dest, off)), 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	data := h.data
	if data == nil || off == 0 && h.read {
		text, errno := h.n.s.render(ctx, h.n.f)
		if errno != 0 {
			return nil, errno
		}
		h.keep(text)
		data = text
	}
	h.read = true
	return fuse.ReadResultData(slice(data, dest, off)), 0
}

// slice copies the part of text at off into dest.
func slice(text, dest []byte, off int64) []byte {
	if off >= int64(len(text)) {
		return nil
	}
	return dest[:copy(dest, text[off:])]
}

// unpin forgets the kept text; h.mu is held.
func (h *handle) unpin() {
	if h.data != nil {
		h.n.s.pinned.Add(-int64(len(h.data)))
		h.data = nil
	}
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	h.unpin()
	h.mu.Unlock()
	return 0
}

// render runs f.Render when a render slot is free (EINTR if the reader
// gives up first).
func (s *Server) render(ctx context.Context, f File) ([]byte, syscall.Errno) {
	select {
	case s.renders <- struct{}{}:
	case <-ctx.Done():
		return nil, syscall.EINTR
	}
	defer func() { <-s.renders }()
	return f.Render(), 0
}
