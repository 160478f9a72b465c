package watchdog

import "github.com/umlkit/umlkit/internal/watchdogproto"

// ParseArgs parses uml_watchdog's command line (-pid PID or -mconsole
// SOCKET) into a Config with the default timeouts.
func ParseArgs(args []string) (Config, error) {
	a, err := watchdogproto.Parse(args)
	return Config{Args: a}, err
}
