package guest

import (
	"os/signal"

	"golang.org/x/sys/unix"
)

func ignore(s unix.Signal) { signal.Ignore(s) }
