package kside

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/ubd"
	"golang.org/x/sys/unix"
)

// ubdAdd opens and exports disk d and binds it into the running guest (K).
func (k *kernel) ubdAdd(d plan.Disk, init int) error {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	if k.ubd[d.Unit] != nil {
		return plan.Errorf(plan.CodeExists, "Device is already configured")
	}
	disk, err := ubd.Open(k.ubdOptions(d))
	if err != nil {
		return err
	}
	name := plan.DiskName(d.Unit)
	if k.blocks == nil {
		srv, err := blockfuse.Mount(k.diskDir, map[string]blockfuse.Disk{})
		if err != nil {
			disk.Close()
			return err
		}
		srv.EnablePartitions(k.onPartitions)
		k.blocks = srv
		// No disk at boot, so the guest has no /dev/.ubd yet.
		if err := bindDirIntoGuest(init, k.diskDir, "/dev/"+plan.GuestDiskDir); err != nil {
			k.logf("ubd: /dev/%s: %v", plan.GuestDiskDir, err)
		}
	}
	if err := k.blocks.Add(name, disk); err != nil {
		disk.Close()
		return err
	}
	src := filepath.Join(k.diskDir, name)
	targets := []string{"/dev/" + name, fmt.Sprintf("/dev/ubd/%d", d.Unit)}
	if err := bindIntoGuest(init, src, targets); err != nil {
		unbindFromGuest(init, targets)
		if parts, err := k.blocks.Remove(name); err == nil {
			linkInGuest(init, parts, nil)
		}
		disk.Close()
		return fmt.Errorf("ubd%c: %v", 'a'+d.Unit, err)
	}
	// Then its partitions (the scan hook links them into the guest).
	if _, err := k.blocks.Rescan(name); err != nil {
		k.logf("%s: %v", name, err)
	}
	k.ubd[d.Unit] = disk
	k.idents[d.Unit] = d.IDs
	return nil
}

// ubdRemove undoes ubdAdd (or removes a boot-time disk) unless the disk is
// open in the guest or holds the root ("busy").
func (k *kernel) ubdRemove(unit, init int) error {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	disk := k.ubd[unit]
	if disk == nil {
		return plan.Errorf(plan.CodeNoDevice, "Device doesn't exist")
	}
	if k.rootHeld && k.plan.Root.Unit == unit {
		return plan.ErrBusy
	}
	name := plan.DiskName(unit)
	parts, err := k.blocks.Remove(name)
	if err != nil {
		if errors.Is(err, blockfuse.ErrBusy) {
			return plan.ErrBusy
		}
		return err
	}
	unbindFromGuest(init, []string{"/dev/" + name, fmt.Sprintf("/dev/ubd/%d", unit)})
	linkInGuest(init, parts, nil)
	delete(k.ubd, unit)
	delete(k.idents, unit)
	if err := disk.Flush(); err != nil {
		k.logf("ubd: flush: %v", err)
	}
	return disk.Close()
}

// bindIntoGuest binds the file src (a path in K's mount namespace) onto
// each guest path in targets, creating the guest files first.
func bindIntoGuest(init int, src string, targets []string) error {
	for _, t := range targets {
		tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("open_tree "+src, err)
		}
		err = mountemu.InGuest(init, func() error {
			if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			f.Close()
			if err := unix.MoveMount(tree, "", unix.AT_FDCWD, t, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return os.NewSyscallError("move_mount "+t, err)
			}
			return nil
		})
		unix.Close(tree)
		if err != nil {
			return err
		}
	}
	return nil
}

// bindDirIntoGuest binds the directory src (in K's mount namespace) onto
// the guest directory target, which it makes.
func bindDirIntoGuest(init int, src, target string) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("open_tree "+src, err)
	}
	defer unix.Close(tree)
	return mountemu.InGuest(init, func() error {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		return os.NewSyscallError("move_mount "+target, unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH))
	})
}

// unbindFromGuest detaches and removes the guest paths bindIntoGuest made.
func unbindFromGuest(init int, targets []string) {
	mountemu.InGuest(init, func() error {
		for _, t := range targets {
			unix.Unmount(t, unix.MNT_DETACH)
			os.Remove(t)
		}
		return nil
	})
}
