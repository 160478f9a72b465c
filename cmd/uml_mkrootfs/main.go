// Command uml_mkrootfs makes a root filesystem image for linux: busybox by
// default (no root needed), or Debian with --debian SUITE (debootstrap).
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/umlkit/umlkit/internal/cli"
	"github.com/umlkit/umlkit/internal/mkrootfs"
)

func main() {
	var o mkrootfs.Options
	var files map[string]string
	root := cli.New("uml_mkrootfs [flags] IMAGE", "make a root filesystem image for linux")
	root.Long = "Makes an ext4 root filesystem image: a busybox userland with a shell on the console\n" +
		"(default; from the host's busybox-static, no root needed) or a Debian system (--debian SUITE,\n" +
		"via debootstrap, as root) with a getty on the console and a root password."
	root.Args = cobra.ExactArgs(1)
	f := root.Flags()
	f.IntVarP(&o.SizeMB, "size", "s", 0, "image size in MiB (default 64, Debian 1024)")
	f.StringVar(&o.Busybox, "busybox", "", "static busybox binary (default /bin/busybox)")
	f.StringVar(&o.Debian, "debian", "", "make a Debian SUITE system with debootstrap instead of busybox")
	f.StringVar(&o.Mirror, "mirror", "", "debootstrap mirror (default: debootstrap's)")
	f.StringVar(&o.RootPW, "root-password", "root", "Debian root password")
	f.StringToStringVar(&files, "file", nil, "extra file IMAGE_PATH=HOST_FILE (repeatable)")
	f.BoolVarP(&o.Force, "force", "f", false, "overwrite an existing image")
	root.RunE = func(cmd *cobra.Command, args []string) error {
		o.Image, o.Files, o.Log = args[0], files, cmd.ErrOrStderr()
		return mkrootfs.Make(cmd.Context(), o)
	}
	os.Exit(cli.Run(root, os.Args[1:]))
}
