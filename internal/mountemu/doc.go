// Package mountemu lets a guest of linux mount hostfs directories and ext2/3/4
// file systems on ubd disks although its processes run in a user namespace
// where the host kernel refuses those mounts: a seccomp user-notification
// filter (installed by G just before it execs init) sends mount(2),
// umount2(2) and the loop-device ioctls to K, and a Server in K performs them
// in the guest's mount namespace — hostfs as a bind of the host directory,
// ext2/3/4 through an image mounter K supplies (fuse2fs), devtmpfs as a bind
// of the machine's /dev — and emulates
// /dev/loop-control and /dev/loopN so that busybox's and util-linux's mount,
// which set up a loop device whenever the source is a regular file, work.
// The block-device ioctls disk tools send (BLKGETSIZE64, BLKSSZGET,
// BLKDISCARD, BLKRRPART, HDIO_GETGEO, ...; block.go) are trapped too and
// answered by K when the descriptor is one of the device files it serves
// (Config.Block: ubd disks, their partitions, loop files). A plain procfs
// mount by the machine's own pid namespace becomes a copy of its /proc
// (with the masks and the machine's /proc views on it), and, when Install
// is asked to, sysinfo(2) is answered with the machine's figures
// (Config.Sysinfo). Everything else continues natively
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE), with the guest's own credentials; the
// new mount API returns ENOSYS so tools fall back to mount(2).
//
// Concurrency: Server.Serve runs one receive loop; every notification is
// handled on its own goroutine. Server.mu guards the loop table and the
// mount records; it is never held while a mount is being made or a server
// is being waited for.
//
// Design: shared/docs/architecture.md ("Disks (ubd)"); hostfs semantics:
// shared/spec/cmdline.md §4.
package mountemu
