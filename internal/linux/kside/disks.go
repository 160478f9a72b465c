package kside

import (
	"fmt"
	"path/filepath"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/ubd"
)

// openDisks opens every ubd disk through the driver and exports them as
// files in dir. The returned function unexports and closes them.
func (k *kernel) openDisks(dir string) (func(), error) {
	k.cow = map[int]bool{}
	k.diskDir = dir
	k.ubd = map[int]*ubd.Disk{}
	k.idents = map[int][]plan.FileIdent{}
	closeAll := func() {
		k.ubdMu.Lock()
		defer k.ubdMu.Unlock()
		for unit, d := range k.ubd {
			d.Close()
			delete(k.ubd, unit)
		}
	}
	export := map[string]blockfuse.Disk{}
	for _, d := range k.plan.Disks {
		if d.IsDir {
			continue
		}
		disk, err := ubd.Open(k.ubdOptions(d))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("Failed to initialize ubd device %d :%v", d.Unit, err)
		}
		k.ubd[d.Unit] = disk
		k.idents[d.Unit] = d.IDs
		if disk.Header() != nil {
			k.cow[d.Unit] = true
		}
		export[plan.DiskName(d.Unit)] = disk
	}
	if len(export) > 0 {
		srv, err := blockfuse.Mount(dir, export)
		if err != nil {
			closeAll()
			return nil, err
		}
		k.blocks = srv
	}
	return func() {
		k.ubdMu.Lock()
		srv := k.blocks
		k.blocks = nil
		k.ubdMu.Unlock()
		if srv != nil {
			if err := srv.Close(); err != nil {
				k.logf("ubd: unmount %s: %v", filepath.Base(dir), err)
			}
		}
		k.ubdMu.Lock()
		for _, d := range k.ubd {
			if err := d.Flush(); err != nil {
				k.logf("ubd: flush: %v", err)
			}
		}
		k.ubdMu.Unlock()
		closeAll()
	}, nil
}

// ubdOptions are the driver's options for d; a root-run K has P open the
// host files (host/hostside.go).
func (k *kernel) ubdOptions(d plan.Disk) ubd.Options {
	o := ubd.Options{
		File: d.File, Backing: d.Backing,
		ReadOnly: d.ReadOnly, Sync: d.Sync, NoCOW: d.NoCOW, Shared: d.Shared, NoTrim: d.NoTrim,
		Log: func(line string) { k.logf("%s", line) },
	}
	if k.plan.Shifted && k.helper != nil {
		o.Open = k.helper.open
	}
	return o
}
