#!/usr/bin/env bash
# The version is single-sourced in heroku_resolver.control: META.json, the
# install/upgrade scripts and the built library must agree with it.
set -euo pipefail
cd "$(dirname "$0")/../.."

ctl=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
fail=0
say() { echo "version: $*"; }

[ -n "$ctl" ] || { say "no default_version in heroku_resolver.control"; exit 1; }

# META.json speaks semver: 1.1 -> 1.1.0
semver="$ctl"
[[ "$semver" =~ ^[0-9]+\.[0-9]+$ ]] && semver="$semver.0"
for path in '["version"]' '["provides"]["heroku_resolver"]["version"]'; do
    v=$(/usr/bin/python3 -c "import json,sys; print(json.load(open('META.json'))$path)")
    if [ "$v" != "$semver" ]; then
        say "META.json $path is $v, control file says $ctl ($semver)"
        fail=1
    fi
done

# the scripts reach default_version: a full script or a chain of deltas
if [ ! -f "heroku_resolver--$ctl.sql" ] && ! ls heroku_resolver--*--"$ctl".sql >/dev/null 2>&1; then
    say "no install or upgrade script reaches $ctl"
    fail=1
fi
# every delta leads from a version that exists
for f in heroku_resolver--*--*.sql; do
    [ -e "$f" ] || continue
    from=${f#heroku_resolver--}; from=${from%%--*}
    if [ ! -f "heroku_resolver--$from.sql" ] && ! ls heroku_resolver--*--"$from".sql >/dev/null 2>&1; then
        say "$f starts from $from, which no script creates"
        fail=1
    fi
done

# the installed extension reports the same version as the control file
if command -v psql >/dev/null 2>&1 && [ -n "${PGHOST:-}" ]; then
    av=$(psql -XAtqc "SELECT default_version FROM pg_available_extensions WHERE name = 'heroku_resolver'" 2>/dev/null || true)
    if [ -n "$av" ] && [ "$av" != "$ctl" ]; then
        say "installed default_version is $av, control file says $ctl"
        fail=1
    fi
fi

[ "$fail" = 0 ] && say "control, META.json and scripts agree on $ctl"
exit "$fail"
