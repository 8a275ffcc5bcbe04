#!/usr/bin/env bash
# The watcher's systemd unit, contrib/heroku-pg-resolve-watch@.service, is sandboxed:
#   - `systemd-analyze security --offline=true` rates an instance of it (a copy named
#     heroku-pg-resolve-watch@example.service) at an exposure of 3.0 or less (MAX_EXPOSURE);
#   - it runs as its own user, never root or postgres, with ProtectSystem=strict, and the
#     Debian package makes that user (debian/heroku-pg-resolve.sysusers);
#   - `systemd-analyze verify` finds nothing wrong in it.
# HR_UNIT=FILE checks another unit file (to see an old one fail).
set -euo pipefail
cd "$(dirname "$0")/../.."
unit=${HR_UNIT:-contrib/heroku-pg-resolve-watch@.service}
MAX_EXPOSURE=3.0
say() { echo "unit: $*"; }
fail=0

command -v systemd-analyze >/dev/null || { say "systemd-analyze is not installed (test/install-deps.sh)"; exit 1; }
work=$(mktemp -d /tmp/hr_unit.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$unit" "$work/heroku-pg-resolve-watch@example.service"

out=$(systemd-analyze security --offline=true --no-pager "$work/heroku-pg-resolve-watch@example.service" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p' <<<"$out")
if [[ -z $exposure ]]; then
	say "systemd-analyze security gave no exposure:"
	echo "$out"
	exit 1
fi
if awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
	say "exposure $exposure (at most $MAX_EXPOSURE)"
else
	say "exposure $exposure, over $MAX_EXPOSURE; what counts against it:"
	grep '✗' <<<"$out" || true
	fail=1
fi

user=$(sed -n 's/^User=//p' "$unit" | tail -1)
dynamic=$(sed -n 's/^DynamicUser=//p' "$unit" | tail -1)
if [[ $dynamic != yes && ( -z $user || $user == root || $user == postgres ) ]]; then
	say "runs as \"${user:-root}\": it needs a user of its own (User= or DynamicUser=yes)"
	fail=1
elif [[ -n $user && $dynamic != yes ]] && ! grep -qE "^u +$user( |$)" debian/heroku-pg-resolve.sysusers 2>/dev/null; then
	say "runs as $user, which debian/heroku-pg-resolve.sysusers does not make"
	fail=1
fi
if ! grep -qx 'ProtectSystem=strict' "$unit"; then
	say "no ProtectSystem=strict"
	fail=1
fi

if ! verify=$(systemd-analyze verify --man=no "$work/heroku-pg-resolve-watch@example.service" 2>&1 |
	grep -v -e 'heroku-pg-resolve: No such file' -e 'Command /usr/bin/heroku-pg-resolve is not executable'); then
	:
fi
if [[ -n $verify ]]; then
	say "systemd-analyze verify:"
	echo "$verify"
	fail=1
fi
exit "$fail"
