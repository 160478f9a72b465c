package mconsole

// Command names the 6.1 kernel serves, in its prefix-match order.
var KernelCommands = []struct{ Name, Help string }{
	{"version", "    version - Get kernel version \n"},
	{"halt", "    halt - Halt UML \n"},
	{"reboot", "    reboot - Reboot UML \n"},
	{"config", "    config <dev>=<config> - Add a new device to UML;  \n\tsame syntax as command line \n    config <dev> - Query the configuration of a device \n"},
	{"remove", "    remove <dev> - Remove a device from UML \n"},
	{"sysrq", "    sysrq <letter> - Performs the SysRq action controlled by the letter \n"},
	{"help", "    help - Print this message \n"},
	{"cad", "    cad - invoke the Ctrl-Alt-Del handler \n"},
	{"stop", "    stop - pause the UML; it will do nothing until it receives a 'go' \n"},
	{"go", "    go - continue the UML after a 'stop' \n"},
	{"log", "    log <string> - make UML enter <string> into the kernel log\n"},
	{"proc", "    proc <file> - returns the contents of the UML's /proc/<file>\n"},
	{"stack", "    stack <pid> - returns the stack of the specified pid\n"},
}

// HelpOrder is the order of the help text, which differs from the dispatch
// order (help comes second there).
var HelpOrder = []string{"version", "help", "halt", "reboot", "config", "remove", "sysrq",
	"cad", "stop", "go", "log", "proc", "stack"}

// HelpHeader starts the kernel's help reply.
const HelpHeader = "Commands: \n"

// KernelHelp returns the 722-byte help text of the 6.1 kernel.
func KernelHelp() string {
	s := HelpHeader
	for _, name := range HelpOrder {
		for _, c := range KernelCommands {
			if c.Name == name {
				s += c.Help
			}
		}
	}
	return s
}
