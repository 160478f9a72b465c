// Package cmdline parses UML's command line (the argv of `linux`) into typed
// settings, the way UML 6.1 does: host options are prefix-matched and either
// consumed (umid=, xterm=, --help, --version, --showconfig) or passed on; the
// rest forms the guest command line, to which root=98:0 and console=tty0 are
// appended when absent; words the "kernel" does not know become init's
// arguments (plain words) or environment (key=value), as Linux does.
//
// Two differences from UML 6.1 on purpose: mem= is a kernel option here
// (UML's guest kernel lists it as unknown and hands it to init, although its
// host side has already used it), and vecN: words are parsed into Vec with
// UML's vector_setup messages rather than reaching init (UML's vector
// driver consumes them too).
//
// One option of ours: --cleanup (before any "--"), which UML lacks; a
// kernel parameter never starts with "--", so it cannot clash with one.
//
// Pure: no I/O. Facts: shared/spec/cmdline.md §1–§3, channels.md §1–§2.
package cmdline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxUnits is the number of ubd devices (ubd0..ubd15).
const MaxUnits = 16

// MaxUmidLen is the longest accepted umid.
const MaxUmidLen = 63

// Ubd is one ubdN= disk.
type Ubd struct {
	Unit      int
	ReadOnly  bool   // r
	Sync      bool   // s
	NoCOW     bool   // d
	Shared    bool   // c: no host locking
	NoTrim    bool   // t
	File      string // the COW file when Backing != "", else the image
	Backing   string
	Serial    string
	Specified bool // false for the implicit ubd0=root_fs
}

// Config is the parsed command line.
type Config struct {
	Umid       string
	UmlDir     string // "" = default ~/.uml/
	Mem        uint64 // bytes; 0 = not given
	MemText    string
	Ubd        [MaxUnits]*Ubd
	UbdSync    bool // ubd=sync
	Con        map[int]string
	ConAll     string // con=
	Ssl        map[int]string
	SslAll     string
	Eth        map[int]string
	Vec        map[int]string // vecN: device -> the text after "vecN:"
	Init       string         // init=
	Initrd     string         // initrd=: the initramfs image (a host file)
	RDInit     string         // rdinit=: the initramfs's init ("" = /init)
	Root       string         // root= (always set: root=98:0 default)
	ReadWrite  bool           // "rw" given (we mount read-write anyway, see docs)
	ReadOnly   bool           // "ro"
	Quiet      bool
	NoReboot   bool
	HostfsRoot string
	HostfsApp  bool
	Xterm      string
	Notify     string // mconsole=notify:PATH
	Help       bool
	Version    bool
	ShowConfig bool
	// Cleanup is --cleanup (ours; UML has none): remove what killed
	// machines left (cgroups, umid directories, id blocks) and exit.
	Cleanup bool

	// GuestLine is the command line as the guest sees it (/proc/cmdline).
	GuestLine string
	// InitArgs are the extra arguments for init (argv[1:]).
	InitArgs []string
	// InitEnv are the key=value words passed to init's environment.
	InitEnv []string
	// Unknown are the words passed to user space, for the boot-log line.
	Unknown []string
	// Warnings are boot-log lines produced while parsing (UML prints them).
	Warnings []string
}

// ErrUsage marks command-line errors that stop the boot.
var ErrUsage = errors.New("command line")

// Errors of a ubd spec that the mconsole's config answers with an errno.
var (
	ErrUbdFlag       = errors.New("Expected '=' or flag letter (r, s, c, t or d)")
	ErrUbdConfigured = errors.New("Device is already configured")
)

// Parse parses argv[1:] of linux.
func Parse(args []string) (*Config, error) {
	c := &Config{Con: map[int]string{}, Ssl: map[int]string{}, Eth: map[int]string{}, Vec: map[int]string{}}
	var guest []string
	haveRoot, haveConsole := false, false
	dashes := false // "--" seen: what follows is init's
	for i, w := range args {
		if i == 0 && strings.HasPrefix(w, " ") {
			continue
		}
		consumed := false
		switch {
		case w == "--":
			dashes = true
		case w == "--cleanup" && !dashes:
			// Not a kernel parameter (none starts with "--"); after "--"
			// it is an argument of init's.
			c.Cleanup, consumed = true, true
		case w == "--help":
			c.Help, consumed = true, true
		case w == "--version":
			c.Version, consumed = true, true
		case w == "--showconfig":
			c.ShowConfig, consumed = true, true
		case strings.HasPrefix(w, "umid="):
			consumed = true
			v := w[len("umid="):]
			switch {
			case c.Umid != "":
				c.Warnings = append(c.Warnings, "umid already set")
			case len(v) > MaxUmidLen:
				c.Warnings = append(c.Warnings, fmt.Sprintf("umid '%s' is too long (max %d)", v, MaxUmidLen))
			case strings.ContainsRune(v, '/') || v == "." || v == "..":
				return nil, fmt.Errorf("%w: umid %q must not contain '/' or be . or ..", ErrUsage, v)
			default:
				c.Umid = v
			}
		case strings.HasPrefix(w, "xterm="):
			c.Xterm, consumed = w[len("xterm="):], true
		}
		if consumed {
			continue
		}
		guest = append(guest, w)
	}
	// Guest-side parameters (the kernel's __setup handlers and the
	// host-side options that are passed on).
	afterDashes := false
	for _, w := range guest {
		if afterDashes {
			c.InitArgs = append(c.InitArgs, w)
			continue
		}
		if w == "--" {
			afterDashes = true
			continue
		}
		known, err := c.guestParam(w)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(w, "root=") {
			haveRoot = true
		}
		if strings.HasPrefix(w, "console=") {
			haveConsole = true
		}
		if known {
			continue
		}
		if k, _, ok := strings.Cut(w, "="); ok {
			if strings.Contains(k, ".") { // module.param: never for init
				continue
			}
			c.Unknown = append(c.Unknown, w)
			c.InitEnv = append(c.InitEnv, w)
		} else if !strings.Contains(w, ".") {
			c.Unknown = append(c.Unknown, w)
			c.InitArgs = append(c.InitArgs, w)
		}
	}
	if !haveRoot {
		guest = append(guest, "root=98:0")
		c.Root = "98:0"
	}
	if !haveConsole {
		guest = append(guest, "console=tty0")
	}
	if c.Ubd[0] == nil {
		c.Ubd[0] = &Ubd{Unit: 0, File: "root_fs"}
	}
	c.GuestLine = strings.Join(guest, " ")
	return c, nil
}

// guestParam applies one guest-command-line word. It reports whether the
// word is a parameter the kernel knows (so it is not passed to init).
func (c *Config) guestParam(w string) (bool, error) {
	key, val, hasEq := strings.Cut(w, "=")
	switch {
	case hasEq && key == "mem":
		n, err := MemParse(val)
		if err != nil {
			return false, fmt.Errorf("%w: mem=%s: %v", ErrUsage, val, err)
		}
		c.Mem, c.MemText = n, val
		// UML's guest kernel lists mem= as unknown and puts it in init's
		// environment; it is a kernel option, so it stays in the command
		// line (GuestLine) but goes no further.
		return true, nil
	case hasEq && key == "uml_dir":
		if val == "" {
			return false, fmt.Errorf("%w: uml_dir can't be an empty string", ErrUsage)
		}
		c.UmlDir = val
		return false, nil
	case w == "quiet":
		c.Quiet = true
		return true, nil
	case w == "noreboot":
		c.NoReboot = true
		return false, nil
	case w == "rw":
		c.ReadWrite = true
		return true, nil
	case w == "ro":
		c.ReadOnly = true
		return true, nil
	case hasEq && key == "init":
		c.Init = val
		return true, nil
	case hasEq && key == "root":
		c.Root = val
		return true, nil
	case hasEq && key == "initrd":
		c.Initrd = val
		return true, nil
	case hasEq && key == "rdinit":
		c.RDInit = val
		return true, nil
	case w == "noinitrd" || w == "retain_initrd" || hasEq && key == "initramfs_async":
		// Linux's, about its RAM disk and the memory of the image: nothing
		// to do here, but not for init either.
		return true, nil
	case hasEq && (key == "console" || key == "loglevel" || key == "rootfstype" || key == "rootflags" || key == "panic" || key == "rootdelay"):
		return true, nil
	case w == "debug" || w == "rootwait" || w == "ssl-non-raw":
		return true, nil
	case hasEq && key == "hostfs":
		root, rest, _ := strings.Cut(val, ",")
		c.HostfsRoot = root
		for _, f := range strings.Split(rest, ",") {
			switch f {
			case "":
			case "append":
				c.HostfsApp = true
			default:
				c.Warnings = append(c.Warnings, "hostfs_args - unsupported option - "+f)
			}
		}
		return false, nil
	case hasEq && key == "mconsole":
		if p, ok := strings.CutPrefix(val, "notify:"); ok {
			c.Notify = p
		}
		return true, nil
	case strings.HasPrefix(w, "udb"):
		c.Warnings = append(c.Warnings, w+" specified on command line is almost certainly a ubd -> udb TYPO")
		return true, nil
	case w == "fake_ide":
		c.Warnings = append(c.Warnings, "The fake_ide option has been removed")
		return true, nil
	case strings.HasPrefix(w, "ubd"):
		if err := c.parseUbd(w); err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("Failed to initialize device with \"%s\" : %v", w, err))
		}
		return true, nil
	case hasEq && strings.HasPrefix(key, "con"):
		return true, setLine(c.Con, &c.ConAll, key[3:], val, 16, "console")
	case hasEq && strings.HasPrefix(key, "ssl"):
		return true, setLine(c.Ssl, &c.SslAll, key[3:], val, 64, "serial line")
	case strings.HasPrefix(w, "vec"):
		// UML's __setup("vec", vector_setup) takes every word starting
		// with "vec" and never hands it on.
		c.parseVec(w)
		return true, nil
	case hasEq && strings.HasPrefix(key, "eth"):
		n, err := strconv.Atoi(key[3:])
		if err != nil || n < 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("eth_setup: couldn't parse device number in '%s'", w))
			return true, nil
		}
		c.Eth[n] = val
		return true, nil
	}
	return false, nil
}

func setLine(m map[int]string, all *string, num, val string, max int, what string) error {
	if num == "" {
		*all = val
		return nil
	}
	n, err := strconv.ParseUint(num, 0, 32)
	if err != nil {
		return fmt.Errorf("%w: Failed to set up %s with configuration string \"%s=%s\" : Couldn't parse device number", ErrUsage, what, num, val)
	}
	if int(n) >= max {
		return fmt.Errorf("%w: Failed to set up %s with configuration string \"%s=%s\" : Device number out of range", ErrUsage, what, num, val)
	}
	m[int(n)] = val
	return nil
}

// parseVec parses vecN:key=value,... the way UML's vector_parse does:
// the device number (base 0) runs to the first ':'. Errors become UML's
// boot-log line and drop the device. The key=value list itself is not
// checked here: UML reads it only when it sets the device up.
func (c *Config) parseVec(w string) {
	arg := w[len("vec"):]
	num, rest, ok := strings.Cut(arg, ":")
	if !ok {
		c.Warnings = append(c.Warnings, fmt.Sprintf("vector_setup - Couldn't parse '%s' : Expected ':' after device number", arg))
		return
	}
	n, err := strconv.ParseUint(num, 0, 31)
	if err != nil || strings.Contains(num, "_") { // kstrtouint: no Go digit separators
		c.Warnings = append(c.Warnings, fmt.Sprintf("vector_setup - Couldn't parse '%s' : Bad device number", num))
		return
	}
	if _, dup := c.Vec[int(n)]; dup {
		c.Warnings = append(c.Warnings, fmt.Sprintf("vector_setup - Couldn't parse '%s' : Device already configured", num))
		return
	}
	if bad, ok := badVecSpec(rest); ok {
		c.Warnings = append(c.Warnings, fmt.Sprintf("vector_setup - Couldn't parse '%s'", bad))
		return
	}
	c.Vec[int(n)] = rest
}

// badVecSpec reports whether UML's parser refuses a vector spec (a value
// with a second '='; options without '=' are ignored) and what its message
// names: the spec up to its first '='.
func badVecSpec(spec string) (string, bool) {
	for _, opt := range strings.Split(spec, ",") {
		if _, v, ok := strings.Cut(opt, "="); ok && strings.Contains(v, "=") {
			name, _, _ := strings.Cut(spec, "=")
			return name, true
		}
	}
	return "", false
}

// parseUbd parses ubd<unit><flags>=<file>[(,|:)<file2>][(,|:)<serial>].
func (c *Config) parseUbd(w string) error {
	_, err := c.addUbd(w)
	return err
}

// addUbd is parseUbd returning the disk it configured (nil for ubd=sync).
func (c *Config) addUbd(w string) (*Ubd, error) {
	rest := w[len("ubd"):]
	if strings.HasPrefix(rest, "=") {
		if rest == "=sync" {
			c.UbdSync = true
			return nil, nil
		}
		return nil, errors.New("fake major not supported any more")
	}
	var unit int
	switch {
	case rest != "" && rest[0] >= 'a' && rest[0] <= 'z':
		unit = int(rest[0] - 'a')
		rest = rest[1:]
	default:
		end := 0
		for end < len(rest) && (rest[end] >= '0' && rest[end] <= '9' || end == 1 && rest[0] == '0' && (rest[end] == 'x' || rest[end] == 'X') ||
			(end > 1 && strings.ContainsRune("abcdefABCDEF", rune(rest[end])) && strings.HasPrefix(strings.ToLower(rest), "0x"))) {
			end++
		}
		n, err := strconv.ParseUint(rest[:end], 0, 32)
		if err != nil || end == 0 {
			return nil, errors.New("Couldn't parse device number")
		}
		unit = int(n)
		rest = rest[end:]
	}
	if unit >= MaxUnits {
		return nil, errors.New("Device number out of range")
	}
	u := &Ubd{Unit: unit, Specified: true}
	nflags := 0
	for {
		if rest == "" {
			return nil, errors.New("Missing '='")
		}
		ch := rest[0]
		rest = rest[1:]
		if ch == '=' {
			break
		}
		switch ch {
		case 'r':
			u.ReadOnly = true
		case 's':
			u.Sync = true
		case 'd':
			u.NoCOW = true
		case 'c':
			u.Shared = true
		case 't':
			u.NoTrim = true
		default:
			return nil, ErrUbdFlag
		}
		nflags++
		if nflags > 6 {
			return nil, errors.New("Too many flags specified")
		}
	}
	first, second, third := splitFiles(rest)
	u.File = first
	u.Backing = second
	u.Serial = third
	if u.NoCOW && u.Backing != "" {
		return nil, errors.New("Can't specify both 'd' and a cow file")
	}
	if c.Ubd[unit] != nil && c.Ubd[unit].Specified {
		return nil, ErrUbdConfigured
	}
	c.Ubd[unit] = u
	return u, nil
}

// splitFiles splits "a,b,c" (',' or ':') into up to three fields.
func splitFiles(s string) (a, b, c string) {
	idx := strings.IndexAny(s, ",:")
	if idx < 0 {
		return s, "", ""
	}
	a, s = s[:idx], s[idx+1:]
	idx = strings.IndexAny(s, ",:")
	if idx < 0 {
		return a, s, ""
	}
	return a, s[:idx], s[idx+1:]
}

// MemParse parses Linux memparse syntax: a number (base 0) with an optional
// K/M/G/T/P/E suffix in either case.
func MemParse(s string) (uint64, error) {
	end := 0
	for end < len(s) && strings.ContainsRune("0123456789xXabcdefABCDEF", rune(s[end])) {
		end++
	}
	// A trailing hex-looking suffix letter is a unit unless the number is 0x-prefixed.
	num := s[:end]
	if !strings.HasPrefix(strings.ToLower(num), "0x") {
		end = 0
		for end < len(s) && s[end] >= '0' && s[end] <= '9' {
			end++
		}
		num = s[:end]
	}
	n, err := strconv.ParseUint(num, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	shift := 0
	switch strings.ToUpper(s[end:]) {
	case "":
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	case "P":
		shift = 50
	case "E":
		shift = 60
	default:
		return 0, fmt.Errorf("bad size suffix in %q", s)
	}
	return n << shift, nil
}

// ConsoleSpec returns the channel spec of con N (conN= beats con= beats the
// default fd:0,fd:1 for con0) and whether the console exists.
func (c *Config) ConsoleSpec(n int) (string, bool) {
	if v, ok := c.Con[n]; ok {
		return v, true
	}
	if c.ConAll != "" {
		return c.ConAll, true
	}
	if n == 0 {
		return "fd:0,fd:1", true
	}
	return "", false
}

// ConfigUbd applies an mconsole "config ubd..." change, spec being the text
// after "ubd" ("1r=file", "b=cow,backing", "=sync"): it returns the disk
// now configured (nil for "=sync") or the kernel's error text.
func (c *Config) ConfigUbd(spec string) (*Ubd, error) {
	return c.addUbd("ubd" + spec)
}
