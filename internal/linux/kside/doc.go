// Package kside is K, linux's kernel side: the process P starts in fresh
// user, mount, net, uts, ipc and cgroup namespaces (as root of its user
// namespace: an unprivileged host id block when linux runs as root). It
// executes P's plan (internal/linux/plan): mounts the root filesystem
// (fuse2fs, or the native mount P made) or makes the rootfs of initrd= (a
// tmpfs it unpacks the image into, initrd.go), serves the ubd disks through the
// ubd driver and their FUSE export, gives every console and serial line a
// pty and opens its host channel when the guest opens the line, creates
// the guest's eth devices and relays their frames to the transports P
// opened (or takes the veth end P made for a device's kernel data path),
// emulates the guest's mount(2) (mounts.go, internal/mountemu), runs
// /dev/watchdog (harddog.go) and sysrq, serves the machine's /proc views
// (procview.go, internal/procfuse), then starts G (internal/linux/guest)
// in a time namespace whose clocks start at the boot, and reaps it, and
// tells P by its exit code
// whether the guest halted, rebooted or died.
//
// What it may touch: only its own namespaces, what P donated (by name,
// plan.FD*), and, run as root, what P's host helper hands it. It never
// opens host paths of the user's on its own when run as root.
//
// Messages: it answers P's control requests (control.go) and, run as
// root, sends P host requests (hosthelper.go); both are plan's types.
//
// Start-up is a stage list (stages.go, internal/stage).
//
// Lock order: kernel.ubdMu, kernel.ethMu and line.mu (consoles) before
// helperClient.mu (a request to P) before kernel.logMu (the console
// output), which is a leaf.
package kside
