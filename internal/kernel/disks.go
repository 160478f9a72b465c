package kernel

import (
	"fmt"
	"path/filepath"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/ubd"
)

func diskName(unit int) string { return "ubd" + string(rune('a'+unit)) }

// openDisks opens every ubd disk through the driver and exports them as
// files in dir. The returned function unexports and closes them.
func (k *kernel) openDisks(dir string) (func(), error) {
	k.cow = map[int]bool{}
	var opened []*ubd.Disk
	closeAll := func() {
		for _, d := range opened {
			d.Close()
		}
	}
	export := map[string]blockfuse.Disk{}
	for _, d := range k.plan.Disks {
		if d.IsDir {
			continue
		}
		disk, err := ubd.Open(ubd.Options{
			File: d.File, Backing: d.Backing,
			ReadOnly: d.ReadOnly, Sync: d.Sync, NoCOW: d.NoCOW, Shared: d.Shared, NoTrim: d.NoTrim,
			Log: func(line string) { k.logf("%s", line) },
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("Failed to initialize ubd device %d :%v", d.Unit, err)
		}
		opened = append(opened, disk)
		if disk.Header() != nil {
			k.cow[d.Unit] = true
		}
		export[diskName(d.Unit)] = disk
	}
	if len(export) == 0 {
		return closeAll, nil
	}
	srv, err := blockfuse.Mount(dir, export)
	if err != nil {
		closeAll()
		return nil, err
	}
	return func() {
		if err := srv.Close(); err != nil {
			k.logf("ubd: unmount %s: %v", filepath.Base(dir), err)
		}
		for _, d := range opened {
			if err := d.Flush(); err != nil {
				k.logf("ubd: flush: %v", err)
			}
		}
		closeAll()
	}, nil
}
