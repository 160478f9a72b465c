package procview

import (
	"fmt"
	"strings"
)

// SwapsHeader is the first line of /proc/swaps.
const SwapsHeader = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"

// RenderSwaps returns the machine's /proc/swaps, consistent with the
// SwapTotal and SwapFree of RenderMeminfo for the same inputs: the host's
// text while those are the host's, the header alone when the machine has
// no swap, and otherwise one line for all of it, named "none" of type
// "virtual" as LXCFS shows it, in the kernel's columns.
func RenderSwaps(hostSwaps, hostMeminfo []byte, m Memory) ([]byte, error) {
	if len(hostSwaps) > MaxInput {
		return nil, ErrTooLong
	}
	h, err := ParseMeminfo(hostMeminfo)
	if err != nil {
		return nil, err
	}
	if !m.Virtual() {
		return hostSwaps, nil
	}
	total, free := m.swap(h)
	if total == h.bytesOf("SwapTotal") && free == h.bytesOf("SwapFree") {
		return hostSwaps, nil
	}
	header, _, _ := strings.Cut(string(hostSwaps), "\n")
	if !strings.HasPrefix(header, "Filename") {
		header = SwapsHeader
	}
	out := header + "\n"
	if total == 0 {
		return []byte(out), nil
	}
	return []byte(out + swapLine("none", "virtual", total>>10, (total-free)>>10, 0)), nil
}

// swapLine is one line of /proc/swaps in the kernel's columns: the name
// padded to 40, the type, then size and use in kB, each followed by a
// second tab while it is shorter than 8 digits, and the priority. The
// type gets two tabs, as the kernel gives "file".
func swapLine(name, typ string, sizeKB, usedKB uint64, prio int) string {
	pad := 1
	if len(name) < 40 {
		pad = 40 - len(name)
	}
	tab := func(v uint64) string {
		if v < 10000000 {
			return "\t"
		}
		return ""
	}
	return fmt.Sprintf("%s%s%s\t\t%d\t%s%d\t%s%d\n", name, strings.Repeat(" ", pad), typ,
		sizeKB, tab(sizeKB), usedKB, tab(usedKB), prio)
}
