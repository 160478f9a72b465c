// Package guest is G, the guest init stage: the process K starts in fresh
// pid and mount namespaces, which becomes PID 1 of the guest. It seals
// every descriptor it was not given by name, masks host paths in /proc and
// /sys, binds K's views of the machine's own /proc files over the host's
// (harden.go; docs/linux.md "The machine's /proc views"), drops capabilities from the bounding set and installs the mount
// emulator's seccomp filter (harden.go, mountemu.go), mounts /proc, /sys
// and a /dev (tmpfs with bound device nodes, a devpts newinstance and the
// console ptys), pivots into the root filesystem K mounted, and execs the
// guest's init (rdinit= in an initramfs root, then init= or the standard
// search order) with the arguments and
// environment of the command line plus container=umlkit (systemd's container
// interface), in a cgroup namespace rooted at the guest's own cgroup.
//
// What it may touch: the mounts K prepared and the devices of its plan
// (plan.Guest); nothing of K's or the host's reaches the guest's init.
//
// Messages: none. It reads plan.Guest from plan.EnvGuest, hands the
// seccomp listener to K over plan.FDGuestMount and, run as root, waits on
// plan.FDGuestGo until P placed it in the guest's cgroup and started the
// guard.
//
// Design: shared/docs/architecture.md ("Three processes").
package guest
