#!/usr/bin/env bash
# The Debian packages, to Debian's standards.  In a copy of the tree (outside the repo:
# dpkg-buildpackage writes ../), with an orig tarball made from it, `dpkg-buildpackage -us -uc`
# builds the source package and postgresql-<v>-heroku-resolver (each version of
# debian/pgversions that is installed), libheroku-resolver1, libheroku-resolver-dev and
# heroku-pg-resolve; then
#   - each package's contents and relations are checked, and the symbols file must list exactly
#     what the library exports;
#   - lintian checks the source and every binary package: any error or warning that is not
#     overridden (debian/*.lintian-overrides, each with its reason) fails;
#   - autopkgtest runs debian/tests with the null runner against the built packages: it installs
#     them and their test dependencies in this system, then runs the whole pg_regress suite and
#     the command and library tests against test/testenv.sh's mock API and TLS clusters (ports
#     HR_DEB_PORT, default 32440, to +4);
#   - with HR_DEB_INSTALL=1, and by default when CI=true (a throwaway machine), the packages
#     stay installed: apt-get installs them again from the files and a cluster of the system's
#     server (port HR_DEB_PORT) runs CREATE EXTENSION from the installed files.  Otherwise the
#     system is put back as it was: the packages autopkgtest installed are purged and the files
#     they replaced (e.g. from `make install`) restored.
# Needs root.  Installs into the system: run it where nothing else uses the PostgreSQL
# installation at the same time.  The copy is the checkout's tracked and untracked files (CI:
# the commit).  HR_KEEP=1 keeps the work directory (logs, packages).  Run time about 3 min.
set -euo pipefail
# With pipefail, `cmd | grep -q` fails when grep exits on its first match while cmd is still
# writing (SIGPIPE): every test here reads a command's whole output first (<<<"$(cmd)").
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
port=${HR_DEB_PORT:-32440}
say() { echo "deb: $*"; }
die() {
	say "$*"
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (autopkgtest installs the packages)"
for t in dpkg-buildpackage lintian autopkgtest pg_buildext; do
	command -v $t >/dev/null || die "$t is not installed (test/install-deps.sh)"
done
ext=heroku_resolver
ctl=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $ext.control)
debver=$(dpkg-parsechangelog -l debian/changelog -S Version)
upver=${debver%-*}
metaver=$(/usr/bin/python3 -c 'import json; print(json.load(open("META.json"))["version"])')
[[ $upver == "$metaver" ]] ||
	die "debian/changelog is $debver, META.json is $metaver: add a changelog entry (dch -v $metaver-1)"
# the changelog's trailer names who made the entry: Debian takes an upload by anyone but the
# Maintainer or an Uploader for a non-maintainer upload
who=$(dpkg-parsechangelog -l debian/changelog -S Maintainer)
grep -qxF "$who" <(sed -n 's/^\(Maintainer\|Uploaders\): *//p; s/^ \(.*\),$/\1/p' debian/control) ||
	die "debian/changelog's trailer ($who) is not the Maintainer or an Uploader in debian/control"

keep=${HR_DEB_INSTALL:-0}
if [[ ${CI:-} == true && -z ${HR_DEB_INSTALL:-} ]]; then keep=1; fi

WORK=$(mktemp -d /tmp/hr_deb.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=test/checks/lib/pgsandbox.bash
. test/checks/lib/pgsandbox.bash
debs=()
restore=0
# Put the system back as it was before autopkgtest: purge the packages it installed that were
# not installed before, then put back every file the packages touched as it was (including files
# of a `make install`, and of an earlier build of the same packages, which stay installed).
put_back() {
	local new
	((restore)) || return 0
	restore=0
	new=$(comm -13 "$WORK/pkgs.before" <(installed_pkgs) | tr '\n' ' ')
	if [[ -n $new ]]; then
		say "purging what autopkgtest installed: $new"
		# shellcheck disable=SC2086 # a list of package names
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $new </dev/null >"$WORK/purge.log" 2>&1 ||
			{ tail -n 20 "$WORK/purge.log"; say "apt-get purge failed"; }
	fi
	if [[ -s $WORK/saved.list ]]; then
		tar -C / -xpf "$WORK/saved.tar" && ldconfig &&
			say "put back $(wc -l <"$WORK/saved.list") files as they were"
	fi
}
cleanup() {
	sandbox_stop
	put_back
	if [[ ${HR_KEEP:-0} == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
installed_pkgs() {
	dpkg-query -W -f='${db:Status-Status} ${Package}\n' | awk '$1 == "installed" { print $2 }' | LC_ALL=C sort -u
}

src=$WORK/heroku-resolver-$upver
mkdir -p "$src"
# shellcheck disable=SC2016 # expanded by the inner sh
git ls-files -z -c -o --exclude-standard | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar -c --null -T - -f - | tar -x -C "$src"
[[ -f $src/debian/rules ]] || die "no debian/rules in the copy"
tar -C "$WORK" --exclude="heroku-resolver-$upver/debian" -cJf "$WORK/heroku-resolver_$upver.orig.tar.xz" \
	"heroku-resolver-$upver"

# --- build ---
start=$SECONDS
if ! (cd "$src" && dpkg-buildpackage -us -uc) >"$WORK/build.log" 2>&1; then
	grep -nE 'error|Error|missing|not installed|needs updating' "$WORK/build.log" | tail -n 30
	tail -n 30 "$WORK/build.log"
	die "dpkg-buildpackage failed"
fi
if grep -q 'dpkg-gensymbols: warning: some new symbols appeared' "$WORK/build.log"; then
	sed -n '/^--- debian\/libheroku-resolver1.symbols/,/^   dh_/p' "$WORK/build.log" | grep -v '^   dh_'
	die "the library exports symbols debian/libheroku-resolver1.symbols does not list: add them with the version that first has them"
fi
arch=$(dpkg --print-architecture)
libarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
changes=$WORK/heroku-resolver_${debver}_$arch.changes
[[ -f $changes ]] || die "no $(basename "$changes")"
deb() { # deb PACKAGE: the built file
	local f=$WORK/${1}_${debver}_$arch.deb
	[[ -f $f ]] || die "no $1 package built"
	echo "$f"
}
pgvs=$(cd "$src" && pg_buildext supported-versions)
[[ -n $pgvs ]] || die "no PostgreSQL version of debian/pgversions is installed"
pkgs=(libheroku-resolver1 libheroku-resolver-dev heroku-pg-resolve)
for v in $pgvs; do pkgs+=("postgresql-$v-heroku-resolver"); done
for p in "${pkgs[@]}"; do debs+=("$(deb "$p")"); done
say "built ${pkgs[*]} and the source package in $((SECONDS - start)) s"

# --- contents ---
files() { dpkg-deb -c "$1" | awk '$1 !~ /^d/ { print substr($6, 2) }' | grep -v '^/usr/share/doc/\|^/usr/share/lintian/'; }
want() { # want PACKAGE PATH...: the package has exactly these files (besides docs and overrides)
	local p=$1 extra
	shift
	extra=$(comm -3 <(files "$(deb "$p")" | LC_ALL=C sort) <(printf '%s\n' "$@" | LC_ALL=C sort))
	[[ -z $extra ]] || die "$p: files not as expected (left: only in the package; right: expected, absent):
$extra"
}
depends() { dpkg-deb -f "$(deb "$1")" Depends; }
# the install and upgrade scripts (the Makefile's DATA)
mapfile -t sql < <(cd "$src" && ls $ext--*.sql)
for v in $pgvs; do
	p=postgresql-$v-heroku-resolver
	mapfile -t bc < <(files "$(deb "$p")" | grep "^/usr/lib/postgresql/$v/lib/bitcode/")
	want "$p" "/usr/lib/postgresql/$v/lib/$ext.so" "${bc[@]}" "/usr/share/postgresql/$v/extension/$ext.control" \
		"${sql[@]/#//usr/share/postgresql/$v/extension/}"
	grep -qE "(^|, )postgresql-$v( |,|$)" <<<"$(depends "$p")" || die "$p does not depend on postgresql-$v"
	if ((${#bc[@]})); then
		grep -qE "(^|, )postgresql-$v-jit-llvm " <<<"$(depends "$p")" || die "$p has bitcode but no postgresql-$v-jit-llvm dependency"
	fi
done
# the library's file name carries the Makefile's HR_SO_MAJOR.HR_SO_MINOR
so_minor=$(sed -n 's/^HR_SO_MINOR = \([0-9]*\)$/\1/p' Makefile)
[[ -n $so_minor ]] || die "no HR_SO_MINOR in the Makefile"
want libheroku-resolver1 "/usr/lib/$libarch/libheroku_resolver.so.1" "/usr/lib/$libarch/libheroku_resolver.so.1.$so_minor"
grep -qx './symbols' <<<"$(dpkg-deb --ctrl-tarfile "$(deb libheroku-resolver1)" | tar -t)" || die "libheroku-resolver1 has no symbols file"
mkdir "$WORK/x"
dpkg-deb -x "$(deb libheroku-resolver1)" "$WORK/x"
soname=$(objdump -p "$WORK/x/usr/lib/$libarch/libheroku_resolver.so.1.$so_minor" | awk '$1 == "SONAME" { print $2 }')
[[ $soname == libheroku_resolver.so.1 ]] || die "libheroku_resolver's SONAME is $soname, the package is libheroku-resolver1"
want libheroku-resolver-dev /usr/include/postgresql/heroku_resolver.h "/usr/lib/$libarch/libheroku_resolver.so" \
	"/usr/lib/$libarch/pkgconfig/heroku_resolver.pc"
grep -qF "libheroku-resolver1 (= $debver)" <<<"$(depends libheroku-resolver-dev)" ||
	die "libheroku-resolver-dev does not depend on libheroku-resolver1 (= $debver)"
grep -qE '(^|, )libpq-dev' <<<"$(depends libheroku-resolver-dev)" || die "libheroku-resolver-dev lacks libpq-dev (heroku_resolver.pc requires libpq)"
want heroku-pg-resolve /usr/bin/heroku-pg-resolve /usr/share/man/man1/heroku-pg-resolve.1.gz \
	/lib/systemd/system/heroku-pg-resolve-watch@.service /usr/lib/sysusers.d/heroku-pg-resolve.conf
# the README's links name doc/*.md: every package has those pages beside its README
for d in "${debs[@]}"; do
	p=$(dpkg-deb -f "$d" Package)
	docs=$(dpkg-deb -c "$d" | awk '{ print substr($6, 2) }')
	for page in doc/*.md; do
		grep -qE "^/usr/share/doc/$p/$page(\.gz)?$" <<<"$docs" || die "$p lacks $page beside its README"
	done
done
for p in libheroku-resolver1 libheroku-resolver-dev heroku-pg-resolve; do
	[[ $(dpkg-deb -f "$(deb "$p")" Maintainer) == "$who" ]] || die "$p's Maintainer is not $who"
done
# Upgrades from the previous release: a file that moved to a package of another name needs that
# package to Break and Replace the old one (policy 7.6.1), or dpkg stops the upgrade with
# "trying to overwrite".  The previous release's file lists are in test/checks/lib.
prev=test/checks/lib/deb-previous.files
prevver=$(awk '$1 == "version" { print $2 }' "$prev")
moved=0
for d in "${debs[@]}"; do
	p=$(dpkg-deb -f "$d" Package)
	while read -r old path; do
		[[ $old != "$p" ]] || continue
		grep -qxF "$path" <<<"$(files "$d")" || continue
		moved=$((moved + 1))
		for rel in Breaks Replaces; do
			grep -qE "^$old \(<< [^)]+\)$" <<<"$(dpkg-deb -f "$d" "$rel" | tr ',' '\n' | sed 's/^ *//')" ||
				die "$p ships $path, which $old $prevver shipped, but does not $rel: $old (<< $debver~)"
			v=$(dpkg-deb -f "$d" "$rel" | tr ',' '\n' | sed -n "s/^ *$old (<< \([^)]*\))$/\1/p")
			dpkg --compare-versions "$prevver" lt "$v" && dpkg --compare-versions "$v" le "$debver" ||
				die "$p: $rel: $old (<< $v) does not cover $prevver or names a version after $debver"
		done
	done < <(grep -v '^#\|^version ' "$prev" | sed "s/MULTIARCH/$libarch/")
done
say "upgrade from $prevver: $moved moved files, each package that took one Breaks and Replaces its old package"
apt-get install --simulate -q "${debs[@]}" </dev/null >"$WORK/apt.log" 2>&1 || {
	tail -n 20 "$WORK/apt.log"
	die "apt-get install --simulate: the packages cannot be installed here"
}
say "package contents, relations and symbols ok; dependencies resolve"

# --- lintian ---
# Every tag is shown, overridden ones (O:) with their reason (N:); only E: and W: fail.  (Not
# --fail-on: with --show-overrides it counts the overridden tags too.)
lintian --fail-on none -I --pedantic --show-overrides "$changes" >"$WORK/lintian.log" 2>&1 || die "lintian failed: $(tail -n 5 "$WORK/lintian.log")"
grep -v 'running with root privileges' "$WORK/lintian.log" | sed 's/^/  /'
summary=$(grep -oE '^[EWIPXO]:' "$WORK/lintian.log" | LC_ALL=C sort | uniq -c | tr -s ' \n' ' ')
! grep -qE '^[EW]:' "$WORK/lintian.log" || die "lintian: errors or warnings that are not overridden"
say "lintian ok (tags:${summary:- none}; O: overridden)"

# --- autopkgtest ---
installed_pkgs >"$WORK/pkgs.before"
if ((!keep)); then
	# every file here that the packages will replace or remove: theirs, and those of the same
	# packages installed already
	{
		for d in "${debs[@]}"; do dpkg-deb -c "$d" | awk '$1 !~ /^d/ { print substr($6, 2) }'; done
		for p in "${pkgs[@]}"; do dpkg -L "$p" 2>/dev/null || true; done
	} | LC_ALL=C sort -u | while read -r f; do
		if [[ -L $f || -f $f ]]; then echo "${f#/}"; fi
	done >"$WORK/saved.list"
	tar -C / -cpf "$WORK/saved.tar" -T "$WORK/saved.list"
	restore=1
fi
start=$SECONDS
atp_rc=0
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" LANG=C.UTF-8 \
	autopkgtest --output-dir "$WORK/autopkgtest" --summary "$WORK/autopkgtest.summary" \
	--env "HR_TEST_DIR=$WORK/testenv" --env "HR_LOCAL_PORT=$port" --env "HR_REMOTE_PORT=$((port + 1))" \
	--env "HR_REMOTE2_PORT=$((port + 2))" --env "HR_MOCK_PORT=$((port + 3))" \
	--env "HR_MOCK_TLS_PORT=$((port + 4))" --env "HR_MTLS_PORT=$((port + 5))" \
	"${debs[@]}" "$WORK/heroku-resolver_$debver.dsc" -- null >"$WORK/autopkgtest.log" 2>&1 || atp_rc=$?
sed 's/^/  /' "$WORK/autopkgtest.summary" 2>/dev/null || true
if ((atp_rc != 0)); then
	grep -vE '^autopkgtest \[[0-9:]+\]: (@@@|---)' "$WORK/autopkgtest.log" | tail -n 80
	die "autopkgtest failed (exit status $atp_rc)"
fi
for t in installcheck client; do
	grep -qE "^$t +PASS" "$WORK/autopkgtest.summary" || die "autopkgtest: test $t did not pass"
done
say "autopkgtest (null runner) passed in $((SECONDS - start)) s"

# --- installed for real ---
if ((keep)); then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debs[@]}" </dev/null >"$WORK/apt.log" 2>&1 || {
		tail -n 20 "$WORK/apt.log"
		die "apt-get install failed"
	}
	sandbox_start "$("$PG_CONFIG" --bindir)" "$port" || die "could not start a cluster"
	got=$(sandbox_psql "CREATE EXTENSION $ext" "SELECT extversion FROM pg_extension WHERE extname = '$ext'") ||
		die "CREATE EXTENSION failed: $got"
	[[ $got == "$ctl" ]] || die "CREATE EXTENSION gave version $got, the control file says $ctl"
	cv=$(heroku-pg-resolve --version 2>&1) || die "heroku-pg-resolve --version failed: $cv"
	pc=$(pkg-config --modversion heroku_resolver) || die "pkg-config cannot read heroku_resolver.pc"
	say "installed with apt-get: CREATE EXTENSION $ext ok (version $got); $cv; heroku_resolver.pc $pc"
fi
