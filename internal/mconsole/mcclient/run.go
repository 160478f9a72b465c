package mcclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/umlkit/umlkit/internal/buildinfo"
	"github.com/umlkit/umlkit/internal/mconsole"
	"github.com/umlkit/umlkit/internal/procmem"
)

// Help is the text of uml_mconsole --help.
const Help = `Usage: uml_mconsole [OPTIONS] UMID|SOCKET [COMMAND...]
       uml_mconsole --list [--json] [--uml-dir DIR]

Send COMMAND to the management console of a User-Mode Linux instance and print
its reply as "OK <text>" or "ERR <text>"; the exit status is the reply's error
code & 0xff. Without COMMAND, read commands interactively.

The socket is found as <uml_dir>/UMID/mconsole (with --uml-dir or $UML_DIR),
$HOME/.uml/UMID/mconsole, /tmp/uml/UMID/mconsole, or SOCKET as a path.

Options (before UMID):
  --uml-dir DIR     also look for UMID under DIR (default $UML_DIR)
  --timeout DUR     give up waiting for a reply after DUR (default 10s; 0 = never)
  --list            list the instances under the uml dirs: umid, pid, alive/stale,
                    host memory (PSS of the machine's processes), mconsole socket
  --json            with --list: one JSON array of the instances, for scripts
  --help            show this help
  --version         show the version

Local commands: quit, help, switch <umid|socket>, log [-f FILE] <text>,
mconsole-version, int (send SIGINT to the instance), umlfs <fd>.
`

// Stdio are the streams of a run.
type Stdio struct {
	Stdin          *os.File
	Stdout, Stderr io.Writer
}

// Run is uml_mconsole: args are the arguments after the program name, env
// looks up environment variables. It returns the exit status.
func Run(ctx context.Context, args []string, stdio Stdio, env func(string) string) int {
	l := Lookup{Home: env("HOME"), UMLDir: env("UML_DIR")}
	timeout := DefaultTimeout
	list, asJSON := false, false
	// Our options come first; the first other word is the machine name, as
	// in the real client's "uml_mconsole socket-name [command]".
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		opt, val, hasVal := strings.Cut(args[0], "=")
		needVal := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if len(args) < 2 {
				fmt.Fprintf(stdio.Stderr, "uml_mconsole: option %s needs a value\n", opt)
				return "", false
			}
			args = args[1:]
			return args[0], true
		}
		switch opt {
		case "--":
			args = args[1:]
			goto done
		case "--help":
			io.WriteString(stdio.Stdout, Help)
			return 0
		case "--version":
			fmt.Fprintln(stdio.Stdout, buildinfo.Line("uml_mconsole"))
			return 0
		case "--list":
			list = true
		case "--json":
			asJSON = true
		case "--uml-dir":
			v, ok := needVal()
			if !ok {
				return 1
			}
			l.UMLDir = v
		case "--timeout":
			v, ok := needVal()
			if !ok {
				return 1
			}
			d, err := parseTimeout(v)
			if err != nil {
				fmt.Fprintf(stdio.Stderr, "uml_mconsole: bad --timeout %q: want a duration like 10s or a number of seconds\n", v)
				return 1
			}
			timeout = d
		default:
			fmt.Fprintf(stdio.Stderr, "uml_mconsole: unknown option %s (try --help)\n", opt)
			return 1
		}
		args = args[1:]
	}
done:
	if list {
		return listInstances(l, stdio, asJSON)
	}
	if len(args) == 0 {
		io.WriteString(stdio.Stderr, Usage)
		return 1
	}
	out := bufio.NewWriter(stdio.Stdout)
	defer out.Flush()
	c := NewConsole(out, stdio.Stderr, l, timeout)
	defer c.Close()
	if err := c.Switch(args[0]); err != nil && !errors.Is(err, ErrNotFound) {
		fmt.Fprintf(stdio.Stderr, "uml_mconsole: %v\n", err)
		return 1
	}
	if len(args) > 1 {
		res, _, err := c.Command(ctx, strings.Join(args[1:], " "))
		if err != nil {
			out.Flush()
			fmt.Fprintf(stdio.Stderr, "%s\n", perrorText(err))
			return 1
		}
		return mconsole.ExitStatus(res)
	}
	var lr LineReader
	if fd := int(stdio.Stdin.Fd()); term.IsTerminal(fd) {
		t := term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{stdio.Stdin, stdio.Stdout}, "")
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			t.SetSize(w, h)
		}
		lr = &termReader{fd: fd, t: t}
	} else {
		pr := NewPlainReader(stdio.Stdin, out)
		pr.Term = env("TERM")
		pr.Columns, _ = strconv.Atoi(env("COLUMNS"))
		lr = pr
	}
	defer lr.Close()
	return c.Interact(ctx, lr, func() { out.Flush() })
}

// termReader edits lines on a terminal with x/term's Terminal: cursor
// movement, word and line kills, in-memory history on Up/Down. The terminal
// is in raw mode only while a line is read, so command output is printed in
// the normal mode. Ctrl-D on an empty line and Ctrl-C end the session (the
// real client dies on Ctrl-C).
//
// x/term rather than chzyer/readline: linking chzyer/readline (it pulls in
// net and os/signal) made every one-shot call ~45% more expensive in CPU,
// and the one-shot path is benchmarked against the C client.
type termReader struct {
	fd int
	t  *term.Terminal
}

func (r *termReader) ReadLine(prompt string) (string, error) {
	st, err := term.MakeRaw(r.fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(r.fd, st)
	r.t.SetPrompt(prompt)
	return r.t.ReadLine()
}

func (r *termReader) Close() error { return nil }

func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}

func listInstances(l Lookup, stdio Stdio, asJSON bool) int {
	ins, err := l.List()
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "uml_mconsole: list instances: %v\n", err)
		return 1
	}
	type row struct {
		Umid     string `json:"umid"`
		Pid      int    `json:"pid,omitempty"`
		State    string `json:"state"`
		Socket   string `json:"socket,omitempty"`
		PssBytes int64  `json:"pss_bytes,omitempty"`
		Procs    int    `json:"processes,omitempty"`
	}
	rows := make([]row, 0, len(ins))
	for _, in := range ins {
		r := row{Umid: in.Umid, Pid: in.Pid, State: in.State(), Socket: in.Socket}
		if in.Alive && in.Pid > 0 {
			r.PssBytes, r.Procs, _ = procmem.Tree(in.Pid)
		}
		rows = append(rows, r)
	}
	if asJSON {
		b, _ := json.MarshalIndent(rows, "", "  ")
		fmt.Fprintf(stdio.Stdout, "%s\n", b)
		return 0
	}
	w := tabwriter.NewWriter(stdio.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "UMID\tPID\tSTATE\tMEMORY\tSOCKET")
	for _, r := range rows {
		pid, mem, sock := "-", "-", r.Socket
		if r.Pid > 0 {
			pid = strconv.Itoa(r.Pid)
		}
		if r.PssBytes > 0 {
			mem = procmem.Human(r.PssBytes)
		}
		if sock == "" {
			sock = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Umid, pid, r.State, mem, sock)
	}
	w.Flush()
	return 0
}
