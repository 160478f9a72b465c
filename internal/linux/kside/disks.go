package kside

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/umlkit/umlkit/internal/blockfuse"
	"github.com/umlkit/umlkit/internal/linux/plan"
	"github.com/umlkit/umlkit/internal/mountemu"
	"github.com/umlkit/umlkit/internal/parttable"
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
		// Partition tables are read now (their listing joins the boot
		// log, as UML's does) and again after the guest writes one.
		srv.EnablePartitions(k.onPartitions)
		k.logf("%s", regularFileNote)
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

// regularFileNote is the boot-log line that says where the guest's disks
// differ from UML's block devices (docs/linux.md, "Disks and partitions").
const regularFileNote = "ubd: disks and partitions are regular files in the guest, not block devices: busybox mke2fs needs -F, lsblk does not list them"

// onPartitions is the export's scan hook (blockfuse.EnablePartitions): it
// logs Linux's lines for the table and, once the guest runs, makes the
// guest's /dev follow: a symlink into /dev/.ubd for each partition that
// came, none for those that went (the files themselves come and go in the
// export, which the guest has bound there). It runs with the disk's scan
// lock held, so the names are there when the guest's BLKRRPART, or the
// close(2) of a disk it wrote a table to, returns. It must not take ubdMu
// (hot-plug holds it while it adds a disk, which scans it).
func (k *kernel) onPartitions(disk string, r blockfuse.ScanResult) {
	for _, l := range r.Log {
		k.logf("%s", l)
	}
	k.extMinors.update(r.Removed, r.Added)
	init := int(k.guestPid.Load())
	if init == 0 {
		return // booting: G makes the links from its plan
	}
	if err := linkInGuest(init, r.Removed, r.Added); err != nil {
		k.logf("%s: partitions: %v", disk, err)
	}
}

// extMinors numbers the partitions from 16 on, which Linux puts on the
// extended major 259: each gets the lowest free minor when it appears.
type extMinors struct {
	mu     sync.Mutex
	byName map[string]uint32
}

func (e *extMinors) update(gone, added []blockfuse.Partition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byName == nil {
		e.byName = map[string]uint32{}
	}
	for _, p := range gone {
		delete(e.byName, p.Name)
	}
	for _, p := range added {
		if p.Number < parttable.UbdMinors {
			continue
		}
		used := map[uint32]bool{}
		for _, m := range e.byName {
			used[m] = true
		}
		m := uint32(0)
		for used[m] {
			m++
		}
		e.byName[p.Name] = m
	}
}

func (e *extMinors) get(name string) (uint32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.byName[name]
	return m, ok
}

// procPartitions is the machine's /proc/partitions as UML's shows it: each
// ubd disk (major 98, 16 minors a disk) followed by its partitions.
func (k *kernel) procPartitions() []byte {
	k.ubdMu.Lock()
	defer k.ubdMu.Unlock()
	units := make([]int, 0, len(k.ubd))
	for u := range k.ubd {
		units = append(units, u)
	}
	sort.Ints(units)
	var entries []parttable.ProcEntry
	for _, u := range units {
		name := plan.DiskName(u)
		entries = append(entries, parttable.ProcEntry{Major: parttable.UbdMajor, Minor: uint32(u * parttable.UbdMinors), Blocks: uint64(k.ubd[u].Size()) / 1024, Name: name})
		if k.blocks == nil {
			continue
		}
		for _, p := range k.blocks.Partitions(name) {
			e := parttable.ProcEntry{Major: parttable.UbdMajor, Minor: uint32(u*parttable.UbdMinors + p.Number), Blocks: uint64(p.Size) / 1024, Name: p.Name}
			if p.Number >= parttable.UbdMinors {
				e.Major, e.Minor = parttable.ExtendedMajor, 0
				if m, ok := k.extMinors.get(p.Name); ok {
					e.Minor = m
				}
			}
			entries = append(entries, e)
		}
	}
	return parttable.ProcPartitions(entries)
}

// linkInGuest removes the guest's /dev names of the partitions gone and
// makes those of the partitions added.
func linkInGuest(init int, gone, added []blockfuse.Partition) error {
	return mountemu.InGuest(init, func() error {
		var errs []error
		for _, p := range gone {
			if err := os.Remove("/dev/" + p.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		for _, p := range added {
			dst := "/dev/" + p.Name
			os.Remove(dst) // a stale name of an earlier table
			if err := os.Symlink(plan.PartitionLink(p.Name), dst); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
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
