package host

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/umlkit/umlkit/internal/buildinfo"
	"github.com/umlkit/umlkit/internal/netdev"
)

// helpOptions are the options this build supports, in UML's --help shape:
// the option, then its help indented by four spaces, then a blank line.
var helpOptions = []struct{ opt, help string }{
	{"--showconfig", "Prints the configuration this linux binary was built with."},
	{"mem=<Amount of desired ram>", "Memory limit for the guest, as a number followed by k, K, m, M, g or G.\nEnforced through a memory cgroup where one is delegated to the user.\n\tExample: mem=64M"},
	{"--help", "Prints this message."},
	{"--cleanup", "Removes what machines killed with SIGKILL left behind: the user's\nmachine cgroups (umlkit-UMID) in every hierarchy, instance directories\nof dead machines in uml_dir= (default ~/.uml/) and, as root, the state of\nfree id blocks; then exits. Live machines are left alone. (umlkit only.)"},
	{"console=<preferred console>", "Specify the preferred console output driver"},
	{"root=<file containing the root fs>", "The root device: /dev/ubdX, /dev/ubd/N or 98:<16*N>. Default root=98:0 (ubd0)."},
	{"--version", "Prints the version number of the kernel."},
	{"umid=<name>", "This is used to assign a unique identity to this UML machine and\nis used for naming the pid file and management console socket."},
	{"uml_dir=<directory>", "The location to place the pid and umid files (default ~/.uml/)."},
	{"quiet", "Suppresses the boot log."},
	{"noreboot", "A reboot request exits (status 0) instead of booting again."},
	{"init=<program>", "The program run as the guest's init (default: /sbin/init, /etc/init,\n/bin/init, /bin/sh)."},
	{"initrd=<initrd image>", "This is used to boot UML from an initrd image.  The argument is the\nname of the file containing the image (an initramfs: cpio newc archives,\nuncompressed or gzip, bzip2, lzma, xz, lz4 -l or zstd compressed)."},
	{"rdinit=<program>", "The initramfs's init (default /init). Without it in the initramfs the\nroot= disk is mounted and init= run, as Linux does."},
	{"con[0-9]*=<channel description>", "Attach a console to a host channel. con0=fd:0,fd:1 is the default."},
	{"ubd<n><flags>=<filename>[(:|,)<filename2>][(:|,)<serial>]", "Associate ubd device <n> (0 to 15, or a to p) with a file or a directory.\nFlags: 'r' read-only, 's' synchronous writes, 'd' never a COW file,\n'c' shared (no host locking), 't' no trim/discard. With two filenames the\nfirst is the COW file and the second its backing file."},
	{"eth[0-9]+=<transport>,<options>", "Configure a network device. Transports in this build:\n" + netdev.Help() +
		"Without <mac> a random locally administered address is chosen.\n\tExample: eth0=daemon,,unix,/tmp/uml.ctl"},
	{"vec[0-9]+:transport=<transport>,<key>=<value>,...", "Configure a vector network device, vecN in the guest. Transports:\n" + netdev.VectorHelp() +
		"Every transport takes mac=, mtu= (576-65534), depth=, headroom=, gro=, vec=, ifup=.\n\tExample: vec0:transport=raw,ifname=veth0"},
	{"udb", "This option is here solely to catch ubd -> udb typos."},
	{"fake_ide", "Obsolete stub."},
}

func helpText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "User Mode Linux (umlkit) v%s\n\tavailable at https://github.com/umlkit/umlkit\n\n", buildinfo.Version)
	for _, o := range helpOptions {
		b.WriteString(o.opt + "\n")
		for _, l := range strings.Split(o.help, "\n") {
			if strings.HasPrefix(l, "\t") {
				b.WriteString(l + "\n")
			} else {
				b.WriteString("    " + l + "\n")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func showConfig() string {
	return fmt.Sprintf(`# umlkit linux build configuration
UMLKIT_VERSION=%s
GOARCH=%s
CONFIG_BLK_DEV_UBD=y
CONFIG_BLK_DEV_UBD_COW=y
CONFIG_ROOT_NATIVE_LOOP=y
CONFIG_ROOT_FUSE2FS=y
CONFIG_ROOT_DIRECTORY=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_RD_BZIP2=y
CONFIG_RD_LZMA=y
CONFIG_RD_XZ=y
# CONFIG_RD_LZO is not set
CONFIG_RD_LZ4=y
CONFIG_RD_ZSTD=y
CONFIG_INITRAMFS_PRESERVE_MTIME=y
CONFIG_SUBUID_MAP=y
CONFIG_MEMCG_LIMIT=y
CONFIG_CON_FD=y
CONFIG_MCONSOLE=y
CONFIG_MCONSOLE_COMMANDS="version halt reboot help cad stop go log proc config(query)"
CONFIG_UML_NET=y
CONFIG_UML_NET_DAEMON=y
CONFIG_UML_NET_DAEMON_DEFAULT_SOCK="/var/run/uml-utilities/uml_switch.ctl"
CONFIG_UML_NET_TUNTAP=y
CONFIG_UML_NET_TUNTAP_UML_NET_HELPER=y
CONFIG_UML_NET_MCAST=y
CONFIG_UML_NET_UCAST=y
# CONFIG_UML_NET_ETHERTAP is not set
# CONFIG_UML_NET_SLIP is not set
# CONFIG_UML_NET_SLIRP is not set
CONFIG_UML_NET_VDE=y
# CONFIG_UML_NET_VECTOR is not set
`, buildinfo.Version, runtime.GOARCH)
}
