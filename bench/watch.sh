#!/usr/bin/env bash
# heroku-pg-resolve watch: how fast a webhook's change is applied, and what a fleet costs in
# API requests.  Not a test: nothing is asserted.
#
#   bash test/testenv.sh start && make && bash bench/watch.sh
#
# 1. Latency: a watcher keeps 50 apps' service entries and notifies 3 clusters of this script's
#    own, each preloading the extension with the 50 apps in its cache (heroku.cache_ttl 1h, no
#    feed or refresher of its own), through a role that has EXECUTE on heroku_resolver_refresh()
#    only.  For each of WATCH_ROUNDS apps in turn: a new URL in the mock, then a signed webhook
#    POST to the watcher; measured from the POST to the service file rewritten (polled every
#    ms), to each cluster's heroku_resolver_refresh(app) done, its cache revalidated (the end of
#    the statement in the cluster's log, log_min_duration_statement for the watcher's role), and
#    to the 200.  Target: under 1 s plus one API round trip (a config-vars GET, measured
#    alongside).
# 2. API requests per hour, 3 clusters x 50 apps, measured both ways over WATCH_MEASURE seconds
#    of a quiet feed polled every second and WATCH_CHANGES changes: one watcher polling the feed
#    and notifying the clusters, versus each cluster's own feed (heroku.watch_interval) and no
#    watcher; the hour is computed for a feed every WATCH_INTERVAL (default 30s) in both.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${WATCH_ROUNDS:-20}
INTERVAL_S=${WATCH_INTERVAL:-30}
MEASURE_S=${WATCH_MEASURE:-10}
CHANGES=${WATCH_CHANGES:-10}
LISTEN_PORT=${WATCH_LISTEN_PORT:-25396}
NAPPS=50
NCLUSTERS=3
CLI=${HR_PG_RESOLVE:-$(dirname "${BASH_SOURCE[0]}")/../client/heroku-pg-resolve}
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
bench_init watch "${WATCH_PORT:-25397}"
apps=()
for i in $(seq -w 1 "$NAPPS"); do apps+=("bench-watch-$i"); done
watcher=''
bench_at_exit 'kill -TERM $watcher 2>/dev/null; wait $watcher 2>/dev/null; for a in "${apps[@]}"; do "$PY" "$HR_MOCKCTL" delete-app "$a" >/dev/null 2>&1; done'
# the clusters: ports PORT, PORT+1, PORT+2; only the watcher's calls (role watcher) are logged,
# each line with the epoch time it was written
ports=()
for c in $(seq 0 $((NCLUSTERS - 1))); do
	ports+=($((PORT + c)))
	bench_cluster "$WORK/cluster$c" $((PORT + c)) <<CONF
lc_messages = 'C'
shared_preload_libraries = 'heroku_resolver'
heroku.cache_ttl = '1h'
heroku.watch_interval = 0
heroku.refresh_interval = 0
log_line_prefix = '%n '
CONF
	PSQL_PORT=$((PORT + c)) psql_ <<'SQL'
CREATE EXTENSION heroku_resolver;
CREATE ROLE watcher LOGIN;
GRANT EXECUTE ON FUNCTION heroku_resolver_refresh(text, text) TO watcher;
ALTER ROLE watcher SET log_min_duration_statement = 0;
SQL
done

secret=bench-$(openssl rand -hex 12)
printf '%s\n' "$secret" >"$WORK/secret"
cp "$HR_API_KEY_FILE" "$WORK/key"
chmod 600 "$WORK/secret" "$WORK/key"
for a in "${apps[@]}"; do
	"$PY" "$HR_MOCKCTL" put-app "$a" --var "DATABASE_URL=postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/$a" >/dev/null
done
# every cluster uses the 50 apps: their URLs are in its cache
for p in "${ports[@]}"; do
	for a in "${apps[@]}"; do echo "SELECT heroku_database_url('$a') IS NOT NULL;"; done |
		PSQL_PORT=$p psql_ >/dev/null
done

# start_watcher INTERVAL: a watcher of the 50 apps, the clusters as its --db
start_watcher() {
	local args=() a p
	for a in "${apps[@]}"; do args+=(--service "$a=$a"); done
	for p in "${ports[@]}"; do args+=(--db "host=$WORK port=$p dbname=postgres user=watcher"); done
	# not through runuser: the watcher itself gets the signals
	HEROKU_API_URL="$HEROKU_MOCK_URL" "$CLI" watch --api-key-file "$WORK/key" "${args[@]}" \
		--service-file "$WORK/pg_service.conf" --interval "$1" --listen "127.0.0.1:$LISTEN_PORT" \
		--webhook-secret-file "$WORK/secret" 2>>"$WORK/watch.log" &
	watcher=$!
	for _ in $(seq 200); do grep -q 'watching' "$WORK/watch.log" 2>/dev/null && return 0; sleep 0.05; done
	echo "watch: the watcher did not start" >&2
	tail -5 "$WORK/watch.log" >&2
	exit 1
}
stop_watcher() {
	kill -TERM "$watcher"
	wait "$watcher" || true
	watcher=''
}

# ---- 1. latency
start_watcher 1h
SECRET=$secret HOOKPORT=$LISTEN_PORT SVC=$WORK/pg_service.conf ROUNDS=$ROUNDS MOCK=$HEROKU_MOCK_URL \
	KEYFILE=$HR_API_KEY_FILE LOGS="$(printf '%s ' "$WORK"/cluster*.log)" APPS="${apps[*]}" \
	"$PY" - >"$WORK/latency" <<'PYEOF'
import base64, hashlib, hmac, http.client, json, os, re, secrets, statistics, threading, time, uuid
from urllib.parse import urlsplit
e = os.environ
apps = e["APPS"].split()
logs = e["LOGS"].split()
mock = urlsplit(e["MOCK"])
token = open(e["KEYFILE"]).readline().strip()

def mock_req(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(mock.hostname, mock.port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

def api_round_trip(app):
    t = time.monotonic()
    s, _ = mock_req("GET", "/apps/%s/config-vars" % app, headers={
        "Authorization": "Bearer " + token, "User-Agent": "bench",
        "Accept": "application/vnd.heroku+json; version=3"})
    assert s == 200
    return time.monotonic() - t

# "<epoch> LOG:  duration: ... execute <unnamed>: SELECT heroku_resolver_refresh($1)" then
# "<epoch> DETAIL:  parameters: $1 = '<app>'": when that cluster's refresh of app ended
EXEC = re.compile(r"^(\d+\.\d+) LOG:  duration: [\d.]+ ms  execute [^:]*: SELECT heroku_resolver_refresh")
def refresh_done(log, app, since):
    lines = open(log, errors="replace").read().splitlines()
    for i, line in enumerate(lines[:-1]):
        m = EXEC.match(line)
        if m and float(m.group(1)) >= since and lines[i + 1].endswith("parameters: $1 = '%s'" % app):
            return float(m.group(1))
    return float("nan")

rows = []
for app in apps[:int(e["ROUNDS"])]:
    pw = secrets.token_hex(8)
    mock_req("PATCH", "/__mock/apps/%s/config-vars" % app,
             json.dumps({"DATABASE_URL": "postgres://u:%s@127.0.0.1:5432/%s" % (pw, app)}),
             {"Content-Type": "application/json"})
    body = json.dumps({"resource": "release", "action": "create", "data": {"app": {"name": app}},
                       "webhook_metadata": {"delivery": {"id": str(uuid.uuid4())}}}).encode()
    sig = base64.b64encode(hmac.new(e["SECRET"].encode(), body, hashlib.sha256).digest()).decode()
    done = {}
    def post():
        c = http.client.HTTPConnection("127.0.0.1", int(e["HOOKPORT"]), timeout=30)
        c.request("POST", "/webhooks/heroku", body=body, headers={
            "Content-Type": "application/json", "Heroku-Webhook-Hmac-SHA256": sig})
        done["status"] = c.getresponse().status
        done["t"] = time.time()
        c.close()
    t0 = time.time()
    th = threading.Thread(target=post)
    th.start()
    t_file = None
    while t_file is None and time.time() - t0 < 10:
        try:
            if ("password=%s\n" % pw) in open(e["SVC"]).read():
                t_file = time.time()
        except OSError:
            pass
        if t_file is None:
            time.sleep(0.001)
    th.join()
    # the logs' times have milliseconds: the POST's is cut to them
    t0_ms = int(t0 * 1000) / 1000.0
    t_dbs = [refresh_done(log, app, t0_ms) - t0_ms for log in logs]
    rows.append((done["status"], t_file - t0, min(t_dbs), max(t_dbs), done["t"] - t0, api_round_trip(app)))
    time.sleep(0.05)

def ms(xs, q):
    xs = sorted(xs)
    return 1000 * (statistics.median(xs) if q == 50 else xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))])
ok = sum(1 for r in rows if r[0] == 200)
for name, i in (("webhook POST -> service file rewritten", 1),
                ("webhook POST -> first cluster's cache revalidated", 2),
                ("webhook POST -> every cluster's cache revalidated", 3),
                ("webhook POST -> 200 answered", 4), ("one API round trip (config-vars GET)", 5)):
    xs = [r[i] for r in rows]
    print("%s|%.1f|%.1f|%.1f" % (name, ms(xs, 50), ms(xs, 95), 1000 * max(xs)))
print("answers 200|%d of %d" % (ok, len(rows)))
PYEOF
stop_watcher
# what the clusters' heroku_resolver_refresh() returned: 1 = the cached URL changed
changed=$(grep -c "heroku_resolver_refresh('bench-watch-[0-9]*') = 1," "$WORK/watch.log" || true)
refreshed=$(grep -c "heroku_resolver_refresh('bench-watch-[0-9]*') = " "$WORK/watch.log" || true)
echo "heroku_resolver_refresh() calls that changed a cache entry|$changed of $refreshed" >>"$WORK/latency"

# a snapshot of the mock's counts (since its last reset)
stats() { "$PY" "$HR_MOCKCTL" stats; }
# CHANGES config var changes of the first apps, 1.2 s apart, then time to follow the last
changes() {
	local a
	for a in "${apps[@]:0:$CHANGES}"; do
		"$PY" "$HR_MOCKCTL" set-var "$a" DATABASE_URL "postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/$a" >/dev/null
		sleep 1.2
	done
	sleep 1.5
}

# ---- 2a. requests: one watcher polling every second, notifying the clusters
start_watcher 1s
sleep 1.5
w1=$(stats)
sleep "$MEASURE_S"
w2=$(stats)
changes
w3=$(stats)
stop_watcher

# ---- 2b. requests: each cluster's own feed every second, no watcher
for p in "${ports[@]}"; do
	PSQL_PORT=$p psql_ -c "ALTER SYSTEM SET heroku.watch_interval = '1s'" -c 'SELECT pg_reload_conf()' >/dev/null
done
for p in "${ports[@]}"; do
	# the first listing only records what it sees: wait for the second
	for _ in $(seq 100); do
		[[ $(PSQL_PORT=$p psql_ -c 'SELECT feed_requests >= 2 FROM heroku_resolver_status()') == t ]] && break
		sleep 0.1
	done
done
c1=$(stats)
sleep "$MEASURE_S"
c2=$(stats)
changes
c3=$(stats)

W1=$w1 W2=$w2 W3=$w3 C1=$c1 C2=$c2 C3=$c3 MEASURE=$MEASURE_S CHANGES=$CHANGES INTERVAL=$INTERVAL_S \
	NAPPS=$NAPPS NCLUSTERS=$NCLUSTERS "$PY" - "$WORK/latency" <<'PYEOF'
import json, os, sys
e = os.environ
def count(s, pred):
    return sum(n for k, n in json.loads(s)["by_path"].items() if pred(k))
def feed(s):
    return count(s, lambda k: k == "GET /apps")
def cv(s):
    return count(s, lambda k: k.endswith("/config-vars"))
def nm(s):
    return json.loads(s)["not_modified"]
measure, changes, interval = float(e["MEASURE"]), int(e["CHANGES"]), float(e["INTERVAL"])
n = int(e["NCLUSTERS"])
sets = {}
for name, (a, b, c) in (("watcher", (e["W1"], e["W2"], e["W3"])), ("clusters", (e["C1"], e["C2"], e["C3"]))):
    sets[name] = {"feed": feed(b) - feed(a), "nm": nm(b) - nm(a), "quiet_cv": cv(b) - cv(a),
                  "change_cv": cv(c) - cv(b)}
print("\nheroku-pg-resolve watch, 50 apps watched, %d clusters told with heroku_resolver_refresh()\n" % n)
print("| latency (ms) | median | p95 | max |")
print("| --- | --- | --- | --- |")
for line in open(sys.argv[1]):
    parts = line.strip().split("|")
    if len(parts) == 4:
        print("| %s | %s | %s | %s |" % tuple(parts))
    else:
        print("\n%s: %s" % tuple(parts))
for name, what in (("watcher", "one watcher polling every second, notifying the %d clusters" % n),
                   ("clusters", "the %d clusters' own feeds every second, no watcher" % n)):
    s = sets[name]
    print("\nmeasured, %s: %d GET /apps in %g s of a quiet feed (%d answered 304), %d config-vars requests"
          " while quiet; %d config-vars requests for %d changes (%.2f per change)"
          % (what, s["feed"], measure, s["nm"], s["quiet_cv"], s["change_cv"], changes, s["change_cv"] / changes))
w, c = sets["watcher"], sets["clusters"]
w_feed_h = w["feed"] / measure * 3600 / interval
c_feed_h = c["feed"] / measure * 3600 / interval
w_per, c_per = w["change_cv"] / changes, c["change_cv"] / changes
print("\nAPI requests per hour, %d clusters x %s apps, each feed every %g s, C config var changes an hour:\n"
      % (n, e["NAPPS"], interval))
print("| set-up | feed | per change | total at C = 50 |")
print("| --- | --- | --- | --- |")
print("| one watcher notifying the %d clusters | %.0f | %.2f | %.0f |" % (n, w_feed_h, w_per, w_feed_h + 50 * w_per))
print("| each cluster polling its own feed | %.0f | %.2f | %.0f |" % (c_feed_h, c_per, c_feed_h + 50 * c_per))
PYEOF
