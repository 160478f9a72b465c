#include "textflag.h"

// entry is uml_net's process entry point (linked with -ldflags=-E=main.entry,
// see the Makefile): when the environment is not empty it executes
// /proc/self/exe again with an empty one before the Go runtime starts, so
// the setuid-root image's runtime never sees GODEBUG, GOGC, GOMAXPROCS or
// GOMEMLIMIT of the caller (the runtime reads them before main, even in
// secure mode). The kernel makes the new image root again (setuid bit).
// If the exec fails (no /proc), the runtime starts as usual and
// umlnet.ReexecClean drops root before anything else.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), AX		// argc
	LEAQ	8(SP), SI		// argv
	MOVQ	8(SI)(AX*8), CX		// envp[0]
	TESTQ	CX, CX
	JZ	start
	LEAQ	selfexe<>(SB), DI	// filename
	LEAQ	0(SI)(AX*8), DX		// envp: &argv[argc], which is NULL
	MOVQ	$59, AX			// SYS_execve (returns only on failure)
	SYSCALL
start:
	JMP	_rt0_amd64_linux(SB)

DATA	selfexe<>+0(SB)/8, $"/proc/se"
DATA	selfexe<>+8(SB)/8, $"lf/exe\x00\x00"
GLOBL	selfexe<>(SB), RODATA, $16
