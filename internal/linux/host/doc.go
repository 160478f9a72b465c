// Package host is P, the `linux` process the user starts. It parses UML's
// command line, claims the umid directory, checks the host, makes the
// machine's decisions into a plan (internal/linux/plan), owns the host
// side of every device (disk files and COW creation, console channels and
// port listeners, eth transports through internal/netdev and, run as
// root, their kernel data paths into K's network namespace, the uml_net
// helper and its address hooks) and the mconsole socket, and starts and
// supervises K (internal/linux/kside) in fresh user, mount, net, uts, ipc
// and cgroup namespaces, starting it again on reboot.
//
// What it may touch: everything the user who started linux may; run as
// root it gives K an unprivileged id block (hostids.go) and does for K,
// after checking, the host work K may not (hosthelper.go, hostside.go).
//
// Messages: it sends K the control requests of plan/control.go (mconsole
// commands: uname, cad, stop/go, ubd and eth hot-plug, sysrq, stack, proc,
// line queries and changes) and answers K's host requests of plan/host.go
// (open, hostfs, tty, watchdog, guard, xterm, mount). Halt and reboot are
// signals to K (SIGUSR1, SIGUSR2).
//
// Host cgroups (cgroups.go, freezer.go, memcg.go; internal/cgroup): the
// machine's cgroups beside linux's own, a delegated systemd scope for a
// user who may not write that one, the sweep of dead machines' cgroups;
// `linux --cleanup` is cleanup.go.
//
// Boot is two stage lists (boot.go, internal/stage). Lifecycle
// (shared/spec/cmdline.md §5): guest halt/poweroff → exit 0; reboot → boot
// again (noreboot → exit 0); SIGINT/SIGTERM → guest killed, cleanup, exit
// 1; init exiting → panic line, exit 134.
//
// Lock order: machine.cfgMu (mconsole hot-plug) before machine.hostMu and
// before a control request (machine.mu, then controlClient.mu, each held
// only around its own fields or request); hostConsoles.mu and
// machine.hostMu are leaves.
//
// Design: shared/docs/architecture.md.
package host
