#!/usr/bin/env bash
# The release feed on a large account: LARGE_APPS (default 5,000) apps of a team, about 1 kB
# each as Heroku's app objects are (22 fields; a page of 1000 is over 1 MiB), listed by both
# feeds in turn: the extension's (a preloaded cluster of this script's own, heroku.watch_interval
# 1s) and the watcher's (heroku-pg-resolve watch --interval 1s, one service).  For each, from
# the mock's request log (when each request came, when its answer was written, the body's
# size): requests, bytes and time of the first listing (every page read in full), of a quiet
# one (every page 304) and of the one after a release (that app's page read again).  Not a
# test: nothing is asserted.
#
#   bash test/testenv.sh start && make install && bash bench/large_account.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${LARGE_APPS:-5000}
PREFIX=benchlarge
CLI=${HR_PG_RESOLVE:-$(dirname "${BASH_SOURCE[0]}")/../client/heroku-pg-resolve}
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
bench_init large_account "${LARGE_PORT:-25395}"
watcher=''
bench_at_exit 'kill -TERM $watcher 2>/dev/null; wait $watcher 2>/dev/null; "$PY" "$HR_MOCKCTL" delete-bulk-apps $PREFIX >/dev/null 2>&1'
mockctl() { "$PY" "$HR_MOCKCTL" "$@"; }
# GET a control endpoint of the mock (state, requests): its JSON
ctl_get() {
	"$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())' \
		"$HEROKU_MOCK_URL/__mock/$1"
}

mockctl delete-bulk-apps "$PREFIX" >/dev/null
mockctl bulk-apps "$PREFIX" "$N" >/dev/null
apps=$(ctl_get state | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["apps"]))')
changed=$(printf '%s-%05d' "$PREFIX" $((N / 2)))
# the app released during each run, the watcher's one service: it needs a database URL
mockctl set-var "$changed" DATABASE_URL "postgres://bench:$(openssl rand -hex 12)@127.0.0.1:5432/bench" >/dev/null

# run_feed NAME: reset the counts, start the feed (start_NAME), let it list a few times, make a
# release, let it list again, stop it (stop_NAME), save the mock's request log
run_feed() {
	mockctl reset-counts
	"start_$1"
	sleep 5
	mockctl set-var "$changed" BENCH_RELEASE "$1-$(date +%s%N)"
	sleep 4
	"stop_$1"
	ctl_get requests >"$WORK/$1.json"
}

start_extension() {
	bench_cluster <<CONF
shared_preload_libraries = 'heroku_resolver'
heroku.watch_interval = '1s'
heroku.refresh_interval = 0
heroku.database = 'postgres'
CONF
}
stop_extension() { as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null; }

start_watcher() {
	cp "$HR_API_KEY_FILE" "$WORK/key"
	chmod 600 "$WORK/key"
	HEROKU_API_URL="$HEROKU_MOCK_URL" "$CLI" watch --api-key-file "$WORK/key" \
		--service "bench=$changed" --service-file "$WORK/pg_service.conf" --interval 1s \
		2>>"$WORK/watch.log" &
	watcher=$!
}
stop_watcher() {
	kill -TERM "$watcher"
	wait "$watcher" || true
	watcher=''
}

run_feed extension
run_feed watcher

echo "The release feed on an account of $apps apps ($N of one team; bench/large_account.sh)"
"$PY" - "$WORK/extension.json" "$WORK/watcher.json" <<'PY'
import json
import statistics
import sys


def listings(path):
    """The GET /apps requests of a log, grouped by listing (a listing starts with a Range
    that has no lower bound; the feeds send one on their first page)."""
    groups = []
    for e in json.load(open(path))["log"]:
        if e["method"] != "GET" or e["path"] != "/apps":
            continue
        if not groups or "]" not in (e["range"] or ""):
            groups.append([])
        groups[-1].append(e)
    return groups


def figures(group):
    statuses = [e["status"] for e in group]
    return (len(group), ",".join(str(s) for s in statuses),
            sum(e["bytes"] or 0 for e in group),
            (max(e["done"] for e in group) - group[0]["at"]) * 1000)


print("| feed | listing | requests | answers | bytes | ms (first request to last answer) |")
print("| --- | --- | --- | --- | --- | --- |")
for name, path in (("extension", sys.argv[1]), ("watcher", sys.argv[2])):
    groups = listings(path)
    if not groups:
        print("| %s | no listing | | | | |" % name)
        continue
    first = groups[0]
    quiet = [g for g in groups[1:] if all(e["status"] == 304 for e in g)]
    after = [g for g in groups[1:] if any(e["status"] in (200, 206) for e in g)]
    rows = [("first (all read)", first)]
    if quiet:
        # the median quiet listing, by time
        quiet.sort(key=lambda g: figures(g)[3])
        rows.append(("quiet (median of %d)" % len(quiet), quiet[len(quiet) // 2]))
    if after:
        rows.append(("after a release", after[0]))
    for label, g in rows:
        n, answers, size, ms = figures(g)
        print("| %s | %s | %d | %s | %s | %.0f |" % (name, label, n, answers, format(size, ","), ms))
    failed = [e for g in groups for e in g if e["status"] not in (200, 206, 304)]
    if failed:
        print("| %s | failed requests | %d | %s | | |" % (name, len(failed),
                                                         ",".join(str(e["status"]) for e in failed)))
PY
if grep -q 'larger than' "$WORK/watch.log"; then
	echo "watcher: $(grep -c 'larger than' "$WORK/watch.log") listings refused a page for its size"
fi
