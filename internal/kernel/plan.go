package kernel

import (
	"encoding/json"
	"fmt"
	"os"
)

// Plan is what P hands to K (and K to G) as JSON in the environment: every
// decision already made, so the child roles only execute it.
type Plan struct {
	WorkDir  string   `json:"work_dir"` // host dir K mounts a tmpfs over
	Root     RootPlan `json:"root"`
	Init     string   `json:"init"` // "" = standard search
	InitArgs []string `json:"init_args"`
	InitEnv  []string `json:"init_env"`
	Hostname string   `json:"hostname"`
	Disks    []Disk   `json:"disks"`
	Quiet    bool     `json:"quiet"`
	Cmdline  string   `json:"cmdline"`

	Eth []EthPlan `json:"eth,omitempty"` // eth devices (net.go)

	GuestCgroup string `json:"guest_cgroup,omitempty"` // cgroup G moves into (stop/go freezer), or ""
	// Shifted: linux runs as root and K's user namespace maps guest ids
	// onto an unprivileged host id block (hostids.go): K opens host files
	// and makes hostfs trees through P (the "mounthelper" channel).
	Shifted bool   `json:"shifted,omitempty"`
	DevDir  string `json:"dev_dir,omitempty"` // private /dev/fuse, /dev/net/tun nodes for K, or ""
	Notify  string `json:"notify,omitempty"`  // mconsole=notify: socket (notify.go)

	// Set by K for G:
	RootMount string `json:"root_mount,omitempty"` // where the root fs is mounted in K's namespace
	DiskDir   string `json:"disk_dir,omitempty"`   // where K exports /dev/ubdX files
}

// RootPlan says how the root filesystem is mounted.
type RootPlan struct {
	Kind     string `json:"kind"` // "dir" or "image"
	Path     string `json:"path"` // host path of the directory or image file
	Unit     int    `json:"unit"` // ubd unit holding the root (image kind)
	ReadOnly bool   `json:"read_only"`
	FUSE2FS  string `json:"fuse2fs"` // path of fuse2fs (unprivileged image path)
	Native   bool   `json:"native"`  // P passes a loop+ext4 mount fd ("rootmount")
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

// FileIdent is a host file's device and inode.
type FileIdent struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

const envPlan = "_UMLKIT_PLAN"

func (p *Plan) env() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return envPlan + "=" + string(b), nil
}

func planFromEnv() (*Plan, error) {
	s := os.Getenv(envPlan)
	os.Unsetenv(envPlan)
	if s == "" {
		return nil, fmt.Errorf("no boot plan in the environment")
	}
	var p Plan
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("decode boot plan: %w", err)
	}
	return &p, nil
}

// Exit codes of K, read by P.
const (
	kHalt   = 0
	kReboot = 10
	kPanic  = 11
	kFailed = 12
)
