#!/usr/bin/env bash
# The Debian packages build and work: `dpkg-buildpackage -us -uc -b` in a copy of the tree
# (outside the repo: it writes ../*.deb) makes postgresql-<v>-heroku-resolver and
# heroku-pg-resolve, then
#   - each package's contents are checked (extension files / library, header, .pc, command,
#     man page) and `apt-get install --simulate ./*.deb` shows their dependencies resolve;
#   - the packages are unpacked (dpkg -x) into a private copy of the PostgreSQL installation
#     and a throwaway cluster of it (port HR_DEB_PORT, default 57440) runs CREATE EXTENSION;
#     the packaged command answers --version with the control file's version.
# With HR_DEB_INSTALL=1, and by default when CI=true (a throwaway machine), the packages are really installed with
# apt-get and the system's files are tested instead.  The copy is the checkout's tracked and
# untracked files (CI: the commit).  Run time about 1-2 min (one build).
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
port=${HR_DEB_PORT:-57440}
say() { echo "deb: $*"; }
die() {
	say "$*"
	exit 1
}

ext=heroku_resolver
ctl=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $ext.control)
pgv=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
pkg_ext=postgresql-$pgv-heroku-resolver
pkg_cli=heroku-pg-resolve
debver=$(dpkg-parsechangelog -l debian/changelog -S Version)
metaver=$(/usr/bin/python3 -c 'import json; print(json.load(open("META.json"))["version"])')
[[ ${debver%-*} == "$metaver" ]] ||
	die "debian/changelog is $debver, META.json is $metaver: add a changelog entry (dch -v $metaver-1)"

WORK=$(mktemp -d /tmp/hr_deb.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=test/checks/lib/pgsandbox.bash
. test/checks/lib/pgsandbox.bash
cleanup() {
	sandbox_stop
	rm -rf "$WORK"
}
trap cleanup EXIT

src=$WORK/heroku-resolver-${debver%-*}
mkdir -p "$src"
# shellcheck disable=SC2016 # expanded by the inner sh
git ls-files -z -c -o --exclude-standard | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar -c --null -T - -f - | tar -x -C "$src"
[[ -f $src/debian/rules ]] || die "no debian/rules in the copy"

start=$SECONDS
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
	grep -nE 'error|Error|missing|not installed' "$WORK/build.log" | tail -n 30
	tail -n 30 "$WORK/build.log"
	die "dpkg-buildpackage failed"
fi
arch=$(dpkg --print-architecture)
deb_ext=$(ls "$WORK/${pkg_ext}_${debver}_$arch.deb" 2>/dev/null) || die "no $pkg_ext package built"
deb_cli=$(ls "$WORK/${pkg_cli}_${debver}_$arch.deb" 2>/dev/null) || die "no $pkg_cli package built"
say "built $(basename "$deb_ext") and $(basename "$deb_cli") in $((SECONDS - start)) s"

# contents
libarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
want() { # want DEB PATH...
	local deb=$1 p
	shift
	dpkg-deb -c "$deb" | awk '{print substr($6, 2)}' >"$WORK/list"
	for p in "$@"; do grep -qx "$p" "$WORK/list" || die "$(basename "$deb") lacks $p"; done
}
want "$deb_ext" "/usr/lib/postgresql/$pgv/lib/$ext.so" "/usr/share/postgresql/$pgv/extension/$ext.control" \
	"/usr/share/postgresql/$pgv/extension/$ext--1.0.sql"
want "$deb_cli" /usr/bin/heroku-pg-resolve /usr/include/postgresql/heroku_resolver.h \
	"/usr/lib/$libarch/pkgconfig/heroku_resolver.pc" /usr/share/man/man1/heroku-pg-resolve.1.gz \
	"/usr/lib/$libarch/libheroku_resolver.so.1"
dpkg-deb -c "$deb_ext" | grep -q 'heroku-pg-resolve\|libheroku_resolver' && die "$pkg_ext carries client files"
dpkg-deb -c "$deb_cli" | grep -q "/usr/lib/postgresql/" && die "$pkg_cli carries server files"
dpkg-deb -f "$deb_ext" Depends | grep -qE "(^|, )postgresql-$pgv(,|$| )" || die "$pkg_ext does not depend on postgresql-$pgv"
say "package contents ok"

# CI runs on a throwaway machine: install for real there unless told otherwise
install_real=${HR_DEB_INSTALL:-0}
if [[ ${CI:-} == true && -z ${HR_DEB_INSTALL:-} ]]; then install_real=1; fi
if [[ $install_real == 1 ]]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb_ext" "$deb_cli" </dev/null >"$WORK/apt.log" 2>&1 || {
		tail -n 20 "$WORK/apt.log"
		die "apt-get install failed"
	}
	root=
	say "installed with apt-get"
else
	apt-get install --simulate -q "$deb_ext" "$deb_cli" </dev/null >"$WORK/apt.log" 2>&1 || {
		tail -n 20 "$WORK/apt.log"
		die "apt-get install --simulate: the packages cannot be installed here"
	}
	root=$WORK/root
	sandbox_make "$root"
	dpkg -x "$deb_ext" "$root"
	dpkg -x "$deb_cli" "$root"
	say "dependencies resolve (apt-get --simulate); unpacked into a private copy of PostgreSQL"
fi

sandbox_start "$root$("$PG_CONFIG" --bindir)" "$port" || die "could not start a cluster"
got=$(sandbox_psql "CREATE EXTENSION $ext" "SELECT extversion FROM pg_extension WHERE extname = '$ext'") ||
	die "CREATE EXTENSION failed: $got"
[[ $got == "$ctl" ]] || die "CREATE EXTENSION gave version $got, the control file says $ctl"
say "CREATE EXTENSION $ext ok (version $got) from the packaged files"

cv=$(LD_LIBRARY_PATH=$root/usr/lib/$libarch "$root/usr/bin/heroku-pg-resolve" --version 2>&1) ||
	die "heroku-pg-resolve --version failed: $cv"
[[ $cv == *"$ctl"* ]] || die "heroku-pg-resolve --version says '$cv', the control file says $ctl"
pc=$(PKG_CONFIG_PATH=$root/usr/lib/$libarch/pkgconfig \
	pkg-config --modversion heroku_resolver) || die "pkg-config cannot read the packaged heroku_resolver.pc"
say "heroku-pg-resolve --version ok ($cv); heroku_resolver.pc version $pc"
