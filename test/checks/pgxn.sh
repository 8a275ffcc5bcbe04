#!/usr/bin/env bash
# The PGXN release works: `make dist` makes heroku_resolver-<version>.zip from HEAD, then
#   1. `pgxn install ./heroku_resolver-<version>.zip` (Debian's pgxnclient, offline) builds and
#      installs it; DESTDIR sends the files into a private copy of the PostgreSQL installation,
#      so the check never overwrites the extension other runs on this machine use;
#   2. a throwaway cluster of that copy (initdb as postgres, port HR_PGXN_PORT, default 32430)
#      runs CREATE EXTENSION heroku_resolver and reports the control file's version;
#   3. `pgxn check` of the same zip runs its pg_regress suite (sql/, expected/) against the test
#      environment's server ($PGHOST/$PGPORT of env.sh: the tests drive its mock), which runs
#      the extension `make install` put there.
# Step 3 needs test/run-tests.sh's environment; without it (HR_TEST_DIR unset) it is skipped
# and said so.  Run time about 30 s (one build of the zip, one initdb).
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
port=${HR_PGXN_PORT:-32430}
say() { echo "pgxn: $*"; }
die() {
	say "$*"
	exit 1
}

command -v pgxn >/dev/null || die "pgxnclient is not installed (test/install-deps.sh)"
ext=heroku_resolver
ctl=$(git show HEAD:$ext.control | sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p")

WORK=$(mktemp -d /tmp/hr_pgxn.XXXXXX)
work=$WORK
chmod 755 "$work"
# shellcheck source=test/checks/lib/pgsandbox.bash
. test/checks/lib/pgsandbox.bash
sandbox=$work/root
cleanup() {
	sandbox_stop
	rm -rf "$work"
}
trap cleanup EXIT

# 1. the archive
make -s dist >"$work/dist.log" 2>&1 || {
	cat "$work/dist.log"
	die "make dist failed"
}
zip=$(sed -n 's/^dist: \(.*\.zip\)$/\1/p' "$work/dist.log")
[[ -n $zip && -f $zip ]] || die "make dist made no zip"
mv "$zip" "$work/"
zip=$work/$zip
unzip -Z1 "$zip" >"$work/files"
grep -q "^$ext-[^/]*/test/t/" "$work/files" && die "$zip ships test/t (export-ignore)"
grep -qx "$ext-[^/]*/META.json" "$work/files" || die "$zip has no META.json at its top"
say "made $(basename "$zip") ($(grep -vc '/$' "$work/files") files)"

sandbox_make "$sandbox"

# 2. pgxn install (a local zip needs no network; release_status may be unstable)
( cd "$work" && DESTDIR=$sandbox pgxn install --yes --unstable --pg_config "$PG_CONFIG" \
	"./$(basename "$zip")" ) >"$work/install.log" 2>&1 || {
	tail -n 40 "$work/install.log"
	die "pgxn install failed"
}
for f in "$("$PG_CONFIG" --sharedir)/extension/$ext.control" "$("$PG_CONFIG" --pkglibdir)/$ext.so"; do
	[[ -f $sandbox$f && ! -L $sandbox$f ]] || die "pgxn install did not install $f"
done
say "pgxn install ok"

sandbox_start "$sandbox$("$PG_CONFIG" --bindir)" "$port" || die "could not start a cluster of the installed files"
run=$SANDBOX_RUN
got=$(sandbox_psql "CREATE EXTENSION $ext" "SELECT extversion FROM pg_extension WHERE extname = '$ext'") ||
	die "CREATE EXTENSION failed: $got"
[[ $got == "$ctl" ]] || die "CREATE EXTENSION gave version $got, the control file says $ctl"
say "CREATE EXTENSION $ext ok (version $got) in a fresh cluster of the installed files"
cv=$("$sandbox$("$PG_CONFIG" --bindir)/heroku-pg-resolve" --version 2>&1) || die "heroku-pg-resolve --version failed: $cv"
[[ $cv == *"$ctl"* ]] || die "heroku-pg-resolve --version says '$cv', the control file says $ctl"
say "heroku-pg-resolve --version ok ($cv)"

# 3. pgxn check: the dist's own tests against the test environment's server
if [[ -z ${HR_TEST_DIR:-} || ! -f ${HR_TEST_DIR}/env.sh ]]; then
	say "no test environment (run through test/run-tests.sh): pgxn check not run"
	exit 0
fi
# in the server's directory: on failure pgxn copies regression.diffs to the current one
install -o postgres -m 644 "$zip" "$run/"
# as postgres, as the regress suite runs (the tests call the mock's control CLI)
# shellcheck disable=SC2016 # expanded by the inner shell, after env.sh
if ! runuser -u postgres -- bash -c '. "$HR_TEST_DIR/env.sh" && cd "$1" &&
	pgxn check --unstable --pg_config "$2" -h "$PGHOST" -p "$PGPORT" -U postgres "./$3"' \
	bash "$run" "$PG_CONFIG" "$(basename "$zip")" >"$work/check.log" 2>&1; then
	grep -vE '^ +(File|raise|self|return|\^+|with)|^Traceback|^During handling|^$' "$work/check.log" | tail -n 40
	if [[ -f $run/regression.diffs ]]; then head -n 200 "$run/regression.diffs"; fi
	die "pgxn check failed"
fi
grep -E 'tests passed|^ok ' "$work/check.log" | tail -n 3 || true
say "pgxn check ok"
