#!/usr/bin/env bash
# Builds umlkit's distro packages: umlkit-utilities (drop-in for Debian's
# uml-utilities) and umlkit-linux, each as a .deb and an .rpm, into OUTDIR
# (default ./dist). One command, no root needed; see docs/packaging.md.
#
#   packaging/build.sh [OUTDIR]
#
# Environment: VERSION (package version; default from git), SOURCE_DATE_EPOCH
# (timestamps; default the HEAD commit's time), GOARCH (default the host's),
# NFPM (an nfpm binary to use instead of building v2.45.2 from the module proxy).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/dist}
NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
GO=${GO:-go}

# Which package ships which program. Every cmd/ directory must be listed.
UTIL_BINS="tunctl uml_mconsole uml_mkcow uml_moo uml_net uml_switch uml_watchdog port-helper"
LINUX_BINS="linux uml_mkrootfs"

die() { echo "build.sh: $*" >&2; exit 1; }

cd "$ROOT"
for d in cmd/*/; do
	n=$(basename "$d")
	case " $UTIL_BINS $LINUX_BINS " in
	*" $n "*) ;;
	*) die "cmd/$n is in no package: add it to UTIL_BINS or LINUX_BINS in packaging/build.sh" ;;
	esac
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
if [ -z "${VERSION:-}" ]; then
	if desc=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.3 -> 1.2.3; v1.2.3-4-gabcdef -> 1.2.3+4.gabcdef
		VERSION=$(echo "${desc#v}" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/')
	else
		VERSION="0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	fi
fi
case $VERSION in
[0-9]*) ;;
*) die "VERSION '$VERSION' must start with a digit (deb and rpm rules)" ;;
esac
if echo "$VERSION" | grep -q '[-_ ]'; then die "VERSION '$VERSION' may not contain '-', '_' or spaces (rpm rules)"; fi
ARCH=${GOARCH:-$($GO env GOARCH)}
export VERSION ARCH

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/umlkit-pkg.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ln -s "$ROOT/packaging" "$STAGE/packaging"

# 1. Programs: static (no cgo) so the packages depend on no shared library.
echo "build.sh: building $VERSION for $ARCH" >&2
CGO_ENABLED=0 GOARCH=$ARCH $GO build -trimpath \
	-ldflags "-s -w -X github.com/umlkit/umlkit/internal/buildinfo.Version=$VERSION" \
	-o "$STAGE/bin/" ./cmd/...
# uml_net (setuid root) starts at an entry point that drops the caller's
# environment before the Go runtime reads it (cmd/uml_net/entry_amd64.s).
if [ "$ARCH" = amd64 ]; then
	CGO_ENABLED=0 GOARCH=$ARCH $GO build -trimpath \
		-ldflags "-s -w -X github.com/umlkit/umlkit/internal/buildinfo.Version=$VERSION -E=main.entry" \
		-o "$STAGE/bin/uml_net" ./cmd/uml_net
fi

# 2. Man pages and completions: hand-written ones (docs/man/, and
# packaging/completions/) for the programs that have them, generated from
# cobra (UMLKIT_GENDOCS, see internal/cli/gendocs.go) for the others.
# Generation runs the host's build of the programs, so it also works when
# cross-building for another GOARCH.
GEN=$STAGE/gen

# fallback_docs NAME: a plain man page holding NAME --help, and completions
# that complete file names, for a program with nothing better.
fallback_docs() {
	local n=$1 help
	help=$(cd "$STAGE/run" && timeout 10 "$HOSTBIN/$n" --help </dev/null 2>&1) || true
	mkdir -p "$GEN/man1" "$GEN/bash" "$GEN/zsh" "$GEN/fish"
	{
		printf '.TH "%s" "1" "%s" "umlkit %s" "umlkit manual"\n' "$(echo "$n" | tr a-z A-Z)" \
			"$(date -u -d "@$SOURCE_DATE_EPOCH" '+%b %Y')" "$VERSION"
		printf '.SH NAME\n%s \\- part of umlkit\n.SH DESCRIPTION\n.nf\n' "$n"
		printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
		printf '.fi\n'
	} >"$GEN/man1/$n.1"
	printf '# bash completion for %s (file names)\ncomplete -o bashdefault -o default %s\n' "$n" "$n" >"$GEN/bash/$n"
	printf '#compdef %s\n_files\n' "$n" >"$GEN/zsh/_$n"
	printf '# fish completion for %s (file names)\ncomplete -c %s -F\n' "$n" "$n" >"$GEN/fish/$n.fish"
}
HOSTBIN=$STAGE/bin
if [ "$ARCH" != "$($GO env GOHOSTARCH)" ]; then
	HOSTBIN=$STAGE/hostbin
	CGO_ENABLED=0 GOARCH= $GO build -o "$HOSTBIN/" ./cmd/...
fi
mkdir -p "$GEN" "$STAGE/run"
for n in $UTIL_BINS $LINUX_BINS; do
	# Programs with a hand-written page (those without cobra: linux,
	# uml_net, port-helper) also have hand-written completions.
	if ls docs/man/"$n".[18] >/dev/null 2>&1; then continue; fi
	# A program that ignored UMLKIT_GENDOCS would really run: keep it in a
	# scratch directory, without stdin, and time-limited.
	(cd "$STAGE/run" && HOME=$STAGE/run UMLKIT_GENDOCS=$GEN timeout 30 "$HOSTBIN/$n" </dev/null >/dev/null 2>&1) || true
	if ! ls "$GEN"/man?/"$n".? >/dev/null 2>&1; then
		echo "build.sh: warning: $n has no docs/man page and does not honour UMLKIT_GENDOCS (it no longer ends in cli.Run?); packaging a page made from its --help and file-name completions: write docs/man/$n.1 and packaging/completions/*/$n" >&2
		fallback_docs "$n"
	fi
done
for page in docs/man/*.[18]; do
	sec=${page##*.}
	mkdir -p "$GEN/man$sec"
	cp "$page" "$GEN/man$sec/"
done
for shell in bash zsh fish; do
	mkdir -p "$GEN/$shell"
	cp packaging/completions/$shell/* "$GEN/$shell/"
done

# 3. Split by package; man pages compressed as Debian policy wants.
# linux is installed as linux.umlkit (the "linux" alternative), and so is its page.
for pkg in utilities linux; do
	if [ "$pkg" = utilities ]; then bins=$UTIL_BINS; else bins=$LINUX_BINS; fi
	dst=$STAGE/$pkg
	mkdir -p "$dst/man/man1" "$dst/man/man8" "$dst/completions/bash" "$dst/completions/zsh" "$dst/completions/fish"
	for n in $bins; do
		found=""
		for sec in 1 8; do
			if [ -f "$GEN/man$sec/$n.$sec" ]; then
				name=$n
				[ "$n" = linux ] && name=linux.umlkit
				gzip -9n <"$GEN/man$sec/$n.$sec" >"$dst/man/man$sec/$name.$sec.gz"
				found=1
			fi
		done
		[ -n "$found" ] || die "no man page for $n (write docs/man/$n.1 or .8)"
		cp "$GEN/bash/$n" "$dst/completions/bash/" || die "no bash completion for $n"
		cp "$GEN/zsh/_$n" "$dst/completions/zsh/" || die "no zsh completion for $n"
		cp "$GEN/fish/$n.fish" "$dst/completions/fish/" || die "no fish completion for $n"
	done
done

# 4. nfpm: one .deb and one .rpm per package.
# nfpm is built once per machine from the Go module proxy and kept in the
# user's cache directory (it is not a dependency of the umlkit module).
NFPM=${NFPM:-}
if [ -z "$NFPM" ]; then
	tools=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/umlkit/nfpm-${NFPM_MODULE##*@}
	if [ ! -x "$tools/nfpm" ]; then
		GOBIN=$tools $GO install "$NFPM_MODULE"
	fi
	NFPM=$tools/nfpm
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$STAGE"
for pkg in utilities linux; do
	for fmt in deb rpm; do
		"$NFPM" package --config "packaging/nfpm/$pkg.yaml" --packager "$fmt" --target "$OUT/" >&2
	done
done
ls -1 "$OUT"/umlkit-*"$VERSION"*
