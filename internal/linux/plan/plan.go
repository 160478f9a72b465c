// Package plan is the contract between the three processes of `linux`:
// P (internal/linux/host) makes every decision and writes it into a Plan;
// K (internal/linux/kside) executes the Plan and serves P's control
// requests; G (internal/linux/guest) executes the Guest plan K gives it.
// It also holds the requests K sends back to P for host work (host.go),
// the role names, donated fd names and exit codes the processes share.
//
// Everything here is pure data and its codecs (JSON, length-checked): no
// I/O, no syscalls. Every decoder has a fuzz test.
//
// Design: shared/docs/architecture.md ("Three processes").
package plan

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Child roles (internal/childrole) of the `linux` binary.
const (
	// RoleKernel is K: fresh user, mount, net, uts, ipc and cgroup
	// namespaces; it owns the devices and starts G.
	RoleKernel = "kernel"
	// RolePremap is K before its id maps exist (newuidmap path): it waits
	// for P to write them, then re-execs itself as RoleKernel.
	RolePremap = "kernel-premap"
	// RoleGuest is G, PID 1 of the guest's pid namespace until it execs
	// the guest's init.
	RoleGuest = "guest-init"
)

// Environment variables from P to K and from K to G.
const (
	EnvPlan   = "_UMLKIT_PLAN"       // the Plan (P→K), JSON
	EnvParent = "_UMLKIT_PARENT"     // P's pid: K dies with P
	EnvGuest  = "_UMLKIT_GUEST_PLAN" // the Guest plan (K→G), JSON
)

// Names of the descriptors P donates to K (internal/childrole.Donate).
// Network devices come by their name (Eth.Name: eth0, vec1), and a
// transport's receive side of its own (hybrid) by Eth.RxName (vec1-rx);
// console host fds as "hostfd-N", port listeners as "port-N".
const (
	FDConIn       = "con-in"
	FDConOut      = "con-out"
	FDControl     = "control"     // SOCK_SEQPACKET: P's requests, K's replies (control.go)
	FDRootMount   = "rootmount"   // detached root mount tree (native or directory root)
	FDHostHelper  = "mounthelper" // SOCK_SEQPACKET: K's requests for host work (host.go)
	FDNotify      = "notify"      // connected mconsole=notify: socket
	FDNSReady     = "nsready"     // pipe: P has K's user namespace and idmapped the root
	FDMapSync     = "mapsync"     // pipe: P wrote the id maps (premap stage)
	FDGuestAlive  = "alive"       // G: K's end of this pipe closes when K dies
	FDGuestMount  = "mountemu"    // G: socket for the mount emulator's seccomp listener
	FDGuestGo     = "go"          // G: P placed G in its cgroup and started the guard
	FDGuestPrefix = "guest-"      // (reserved)
	FDInitrd      = "initrd"      // the initrd= image, opened by P (read with pread)
)

// GuardArgv0 is the command line of the guard, the process in the guest's
// pid namespace that powers the guest off when K dies (guest/guard.go,
// host/hostguard.go). The leading '@' is systemd's mark for a process its
// final killing spree at shutdown must spare when it runs as (guest) root
// (https://systemd.io/ROOT_STORAGE_DAEMONS/): without it, systemd-shutdown
// sends the guard SIGTERM, which it ignores, and waits its 90 s timeout.
const GuardArgv0 = "@umlkit-guard"

// Exit codes of K, read by P.
const (
	ExitHalt   = 0
	ExitReboot = 10
	ExitPanic  = 11
	ExitFailed = 12
)

// MaxEncoded bounds an encoded plan or message.
const MaxEncoded = 1 << 20

// ErrTooLong is returned for an encoded plan or message above MaxEncoded.
var ErrTooLong = errors.New("plan: message too long")

// Plan is what P hands K: every decision already made, so K only executes
// it.
type Plan struct {
	WorkDir  string   `json:"work_dir"` // host dir K mounts a tmpfs over
	Root     Root     `json:"root"`
	Init     string   `json:"init"` // "" = standard search
	InitArgs []string `json:"init_args"`
	InitEnv  []string `json:"init_env"`
	Hostname string   `json:"hostname"`
	Disks    []Disk   `json:"disks"`
	Quiet    bool     `json:"quiet"`
	Cmdline  string   `json:"cmdline"` // the guest command line (/proc/cmdline)

	// Mem is mem= in bytes (0: not given); MemCgroup the memory cgroup
	// that enforces it, if one could be made. K renders the guest's
	// /proc/meminfo and /proc/swaps from them (internal/procview).
	Mem       uint64     `json:"mem,omitempty"`
	MemCgroup *MemCgroup `json:"mem_cgroup,omitempty"`

	Eth      []Eth    `json:"eth,omitempty"`
	Consoles Consoles `json:"consoles"`
	Hostfs   Hostfs   `json:"hostfs"`

	GuestCgroup string `json:"guest_cgroup,omitempty"` // cgroup G moves into (stop/go freezer), or ""
	// NoCgroup, when the machine has no cgroup of its own, says why and
	// what would give it one: G then refuses to run systemd as init.
	NoCgroup string `json:"no_cgroup,omitempty"`
	// Shifted: linux runs as root and K's user namespace maps guest ids
	// onto an unprivileged host id block: K opens host files and makes
	// hostfs trees through P (host.go).
	Shifted bool   `json:"shifted,omitempty"`
	DevDir  string `json:"dev_dir,omitempty"` // private /dev/fuse, /dev/net/tun nodes for K, or ""
	Notify  string `json:"notify,omitempty"`  // mconsole=notify: socket

	// Initrd, when set, is the initramfs K unpacks into the machine's
	// initial root (FDInitrd).
	Initrd *Initrd `json:"initrd,omitempty"`
}

// Initrd is the initrd= image: K mounts a tmpfs (Linux's rootfs),
// unpacks the image into it and runs RDInit there when the image has it;
// otherwise it mounts Root as without an initrd.
type Initrd struct {
	Path   string `json:"path"`   // as on the command line, for messages
	Size   int64  `json:"size"`   // bytes of the image
	RDInit string `json:"rdinit"` // the init to look for (rdinit=, default /init)
	// TmpfsSize bounds the rootfs (bytes): mem= when given, else 0 (tmpfs's
	// default, half the host's memory, as Linux's rootfs).
	TmpfsSize uint64 `json:"tmpfs_size,omitempty"`
}

// MemCgroup is the machine's memory cgroup as P made it.
type MemCgroup struct {
	Dir  string `json:"dir"`  // its directory
	Root string `json:"root"` // the mount point of its hierarchy
	V2   bool   `json:"v2"`   // cgroup v2 (memory.max), else v1
}

// Root kinds.
const (
	RootDir   = "dir"
	RootImage = "image"
)

// Root says how the root filesystem is mounted.
type Root struct {
	Kind     string `json:"kind"` // RootDir or RootImage; "" when no disk holds it (an initrd boot may do without)
	Path     string `json:"path"` // host path of the directory or image file
	Unit     int    `json:"unit"` // ubd unit holding the root (image kind)
	ReadOnly bool   `json:"read_only"`
	FUSE2FS  string `json:"fuse2fs"` // path of fuse2fs (unprivileged image path)
	Native   bool   `json:"native"`  // P passes a loop+ext4 mount (FDRootMount)
}

// Disk is one ubd device K serves.
type Disk struct {
	Unit     int    `json:"unit"`
	File     string `json:"file"`
	Backing  string `json:"backing,omitempty"`
	ReadOnly bool   `json:"read_only"`
	Sync     bool   `json:"sync"`
	NoCOW    bool   `json:"no_cow"`
	Shared   bool   `json:"shared"`
	NoTrim   bool   `json:"no_trim"`
	IsDir    bool   `json:"is_dir"`
	// Host identities of File and Backing (the mount emulator refuses a
	// second read-write mount of a disk by any of its names).
	IDs []FileIdent `json:"ids,omitempty"`
}

// DiskName is the guest name of ubd unit: ubda, ubdb, ...
func DiskName(unit int) string { return "ubd" + string(rune('a'+unit)) }

// GuestDiskDir is where the guest sees the ubd export directory (a hidden
// name under /dev); a partition's /dev name is a symlink into it.
const GuestDiskDir = ".ubd"

// PartitionLink is the target of the /dev symlink of a partition (or any
// name of the export): ".ubd/ubdb1".
func PartitionLink(name string) string { return GuestDiskDir + "/" + name }

// FileIdent is a host file's device and inode.
type FileIdent struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// Eth is one network device, ethN= or vecN:: P opened its host side and
// donates it by the device's name; K creates the guest's interface of that
// name and relays frames. Params are the transport's own (internal/netdev
// decodes them).
type Eth struct {
	Unit   int     `json:"unit"`
	Vector bool    `json:"vector,omitempty"` // a vecN: device
	MAC    [6]byte `json:"mac"`
	MTU    int     `json:"mtu,omitempty"` // 0: 1500
	// Vnet: the host side's frames carry a virtio_net_hdr, and the
	// guest's device gets one too, so offloaded frames pass through.
	Vnet bool `json:"vnet,omitempty"`
	// Offload: the guest's device has vnet headers and may send partial
	// checksums and 64 KiB segments: the host side takes them (Vnet), or K
	// segments them in software (netdev.ForGuest).
	Offload bool `json:"offload,omitempty"`
	// KPath: P joins the device to its host interface in the kernel (a
	// veth end it creates as the device in K's network namespace,
	// netdev's kpath.go). At boot P sets it before it knows whether the
	// path could be built: K takes the device if it exists and relays it
	// otherwise. In a hot-plug request it says the path is up.
	KPath     bool            `json:"kpath,omitempty"`
	Transport string          `json:"transport"`
	Params    json.RawMessage `json:"params,omitempty"`
}

// Name is the device's name in the guest (and of its donated descriptor).
func (e Eth) Name() string { return DevName(e.Vector, e.Unit) }

// RxName names the device's second descriptor, donated beside the first
// by transports that receive through a descriptor of their own (the
// hybrid vector transport: the tap sends, a packet socket on it receives).
func (e Eth) RxName() string { return e.Name() + "-rx" }

// DevName is the name of eth (or, vector, vec) device unit.
func DevName(vector bool, unit int) string {
	if vector {
		return fmt.Sprintf("vec%d", unit)
	}
	return fmt.Sprintf("eth%d", unit)
}

// Consoles is what P tells K about the console and serial lines.
type Consoles struct {
	Lines []Line    `json:"lines"`
	Xterm [3]string `json:"xterm"` // emulator, title switch, exec switch ("" = default)
	Umid  string    `json:"umid"`
	Quiet bool      `json:"quiet"`
	FDs   []int     `json:"fds,omitempty"`   // host fds donated as hostfd-N
	Ports []int     `json:"ports,omitempty"` // ports whose listener is donated as port-N
}

// Line is one configured line (a default none is left out).
type Line struct {
	Serial bool   `json:"serial"`
	N      int    `json:"n"`
	Spec   string `json:"spec"`
}

// Name is the line's UML name: conN or sslN.
func (l Line) Name() string {
	if l.Serial {
		return fmt.Sprintf("ssl%d", l.N)
	}
	return fmt.Sprintf("con%d", l.N)
}

// Hostfs is the hostfs= option: the host directory guest hostfs mounts
// are confined to ("" = /), made absolute by P.
type Hostfs struct {
	Root   string `json:"root,omitempty"`
	Append bool   `json:"append,omitempty"`
}

// Guest is what K hands G.
type Guest struct {
	RootMount string `json:"root_mount"`
	// RDInit is the initramfs's init (K found it in the rootfs): G runs it
	// first and, when it cannot, Init or the standard search, in the
	// rootfs, as Linux does.
	RDInit   string   `json:"rdinit,omitempty"`
	Init     string   `json:"init"`
	InitArgs []string `json:"init_args"`
	InitEnv  []string `json:"init_env"`
	// Devices maps a guest /dev name ("ubda", "ubd/0", "tty1") to the host
	// path (in K's mount namespace) bound onto it.
	Devices map[string]string `json:"devices"`
	// DiskDir is the host path (in K's mount namespace) of the ubd export
	// directory, bound onto /dev/.ubd ("" for none); Links are symlinks
	// made in /dev, name -> target ("ubdb1" -> ".ubd/ubdb1": partitions).
	DiskDir string            `json:"disk_dir,omitempty"`
	Links   map[string]string `json:"links,omitempty"`
	// Console is the host path of the pty slave that becomes /dev/console
	// and /dev/tty0.
	Console string `json:"console"`
	// Cgroup, if set, is the cgroup directory G moves into after starting
	// the guard, so that the mconsole's stop freezes the guest but not the
	// guard.
	Cgroup string `json:"cgroup,omitempty"`
	// Views maps a path below the guest's root ("proc/meminfo") to the
	// host path (in K's mount namespace) of the view K serves for it
	// (internal/procfuse); G binds each read-only over its file.
	Views map[string]string `json:"views,omitempty"`
	// Sysinfo: sysinfo(2) goes to K, which answers with the machine's
	// memory (mem=).
	Sysinfo bool `json:"sysinfo,omitempty"`
	// OwnCgroup says that G runs in the machine's guest cgroup by the time
	// init starts (moved there by itself, through Cgroup, or by P): G then
	// mounts the guest's cgroup namespace on /sys/fs/cgroup.
	OwnCgroup bool `json:"own_cgroup,omitempty"`
	// NoCgroup is Plan.NoCgroup: set when the guest has no cgroup it may
	// manage, so systemd as init would freeze; G panics instead.
	NoCgroup string `json:"no_cgroup,omitempty"`
}

// Encode returns the plan as JSON for EnvPlan.
func (p *Plan) Encode() (string, error) { return encode(p) }

// Decode parses a plan made by Encode.
func Decode(s string) (*Plan, error) {
	var p Plan
	if err := decode(s, &p); err != nil {
		return nil, fmt.Errorf("decode boot plan: %w", err)
	}
	return &p, nil
}

// Encode returns the guest plan as JSON for EnvGuest.
func (g *Guest) Encode() (string, error) { return encode(g) }

// DecodeGuest parses a guest plan made by Guest.Encode.
func DecodeGuest(s string) (*Guest, error) {
	var g Guest
	if err := decode(s, &g); err != nil {
		return nil, fmt.Errorf("decode guest plan: %w", err)
	}
	return &g, nil
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if len(b) > MaxEncoded {
		return "", ErrTooLong
	}
	return string(b), nil
}

func decode(s string, v any) error {
	if len(s) > MaxEncoded {
		return ErrTooLong
	}
	if s == "" {
		return errors.New("empty")
	}
	return json.Unmarshal([]byte(s), v)
}

// DevNode is a host device a root-run K gets a private node of: P makes
// it in Plan.DevDir (owned by the machine's id block), K binds it over
// Target in its mount namespace.
type DevNode struct {
	Name, Target string
	Major, Minor uint32
}

// DevNodes are the host devices K opens itself.
var DevNodes = []DevNode{
	{"fuse", "/dev/fuse", 10, 229},
	{"tun", "/dev/net/tun", 10, 200},
}
