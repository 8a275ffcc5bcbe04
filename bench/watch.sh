#!/usr/bin/env bash
# heroku-pg-resolve watch: how fast a webhook's change is applied, and what a fleet costs in
# API requests.  Not a test: nothing is asserted.
#
#   bash test/testenv.sh start && make && bash bench/watch.sh
#
# 1. Latency: a watcher keeps 50 apps' service entries and notifies a cluster of this script's
#    own (a stand-in heroku_resolver_refresh() that records clock_timestamp()).  For each of
#    WATCH_ROUNDS apps in turn: a new URL in the mock, then a signed webhook POST to the
#    watcher; measured from the POST to the service file rewritten (polled every ms), to the
#    cluster notified (the stand-in's timestamp) and to the 200.  Target: under 1 s plus one
#    API round trip (a config-vars GET, measured alongside).
# 2. API requests per hour, 3 clusters x 50 apps: one watcher polling the feed for all of them
#    (every WATCH_INTERVAL, default 30s) versus each cluster polling its own feed, computed from
#    the counts measured over WATCH_MEASURE seconds of a quiet feed (polled every second) and
#    over WATCH_CHANGES changes.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${WATCH_ROUNDS:-20}
INTERVAL_S=${WATCH_INTERVAL:-30}
MEASURE_S=${WATCH_MEASURE:-10}
CHANGES=${WATCH_CHANGES:-10}
LISTEN_PORT=${WATCH_LISTEN_PORT:-50396}
NAPPS=50
NCLUSTERS=3
CLI=${HR_PG_RESOLVE:-$(dirname "${BASH_SOURCE[0]}")/../client/heroku-pg-resolve}
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
bench_init watch "${WATCH_PORT:-50397}"
apps=()
for i in $(seq -w 1 "$NAPPS"); do apps+=("bench-watch-$i"); done
watcher=''
bench_at_exit 'kill -TERM $watcher 2>/dev/null; wait $watcher 2>/dev/null; for a in "${apps[@]}"; do "$PY" "$HR_MOCKCTL" delete-app "$a" >/dev/null 2>&1; done'
bench_cluster <<CONF
lc_messages = 'C'
CONF
psql_ <<'SQL'
-- STAND-IN for the extension's heroku_resolver_refresh(): records when it was called
CREATE TABLE watch_refresh_calls (app text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION heroku_resolver_refresh(app text DEFAULT NULL, config_var text DEFAULT NULL)
RETURNS integer LANGUAGE sql AS $$ INSERT INTO watch_refresh_calls (app) VALUES (app); SELECT 0 $$;
SQL

secret=bench-$(openssl rand -hex 12)
printf '%s\n' "$secret" >"$WORK/secret"
cp "$HR_API_KEY_FILE" "$WORK/key"
chmod 600 "$WORK/secret" "$WORK/key"
for a in "${apps[@]}"; do
	"$PY" "$HR_MOCKCTL" put-app "$a" --var "DATABASE_URL=postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/$a" >/dev/null
done

# start_watcher INTERVAL: a watcher of the 50 apps, the bench cluster as its --db
start_watcher() {
	local args=() a
	for a in "${apps[@]}"; do args+=(--service "$a=$a"); done
	# not through runuser: the watcher itself gets the signals
	HEROKU_API_URL="$HEROKU_MOCK_URL" "$CLI" watch --api-key-file "$WORK/key" "${args[@]}" \
		--service-file "$WORK/pg_service.conf" --db "host=$WORK port=$PORT dbname=postgres user=postgres" \
		--interval "$1" --listen "127.0.0.1:$LISTEN_PORT" --webhook-secret-file "$WORK/secret" \
		2>>"$WORK/watch.log" &
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
	KEYFILE=$HR_API_KEY_FILE SOCK=$WORK PGPORT_=$PORT PGBIN=$PGBIN APPS="${apps[*]}" \
	"$PY" - >"$WORK/latency" <<'PYEOF'
import base64, hashlib, hmac, http.client, json, os, secrets, statistics, subprocess, threading, time, uuid
from urllib.parse import urlsplit
e = os.environ
apps = e["APPS"].split()
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

def stand_in_time(app):
    out = subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(e["PGBIN"], "psql"), "-XAtq",
                          "-h", e["SOCK"], "-p", e["PGPORT_"], "-d", "postgres", "-c",
                          "SELECT extract(epoch FROM max(at)) FROM watch_refresh_calls WHERE app = '%s'" % app],
                         capture_output=True, text=True, check=True).stdout.strip()
    return float(out) if out else None

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
    t_db = stand_in_time(app)
    rows.append((done["status"], t_file - t0, (t_db or t0) - t0, done["t"] - t0, api_round_trip(app)))
    time.sleep(0.05)

def ms(xs, q):
    xs = sorted(xs)
    return 1000 * (statistics.median(xs) if q == 50 else xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))])
ok = sum(1 for r in rows if r[0] == 200)
for name, i in (("webhook POST -> service file rewritten", 1), ("webhook POST -> cluster notified", 2),
                ("webhook POST -> 200 answered", 3), ("one API round trip (config-vars GET)", 4)):
    xs = [r[i] for r in rows]
    print("%s|%.1f|%.1f|%.1f" % (name, ms(xs, 50), ms(xs, 95), 1000 * max(xs)))
print("answers 200|%d of %d" % (ok, len(rows)))
PYEOF
stop_watcher

# ---- 2. requests per hour: a quiet feed polled every second, then changes
start_watcher 1s
sleep 1.5
"$PY" "$HR_MOCKCTL" reset-counts
sleep "$MEASURE_S"
stats=$("$PY" "$HR_MOCKCTL" stats)
for a in "${apps[@]:0:$CHANGES}"; do
	"$PY" "$HR_MOCKCTL" set-var "$a" DATABASE_URL "postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/$a" >/dev/null
	sleep 1.2
done
sleep 1.5
stats2=$("$PY" "$HR_MOCKCTL" stats)
stop_watcher

STATS=$stats STATS2=$stats2 MEASURE=$MEASURE_S CHANGES=$CHANGES INTERVAL=$INTERVAL_S NAPPS=$NAPPS \
	NCLUSTERS=$NCLUSTERS "$PY" - "$WORK/latency" <<'PYEOF'
import json, os, sys
e = os.environ
s1, s2 = json.loads(e["STATS"]), json.loads(e["STATS2"])
def count(s, pred):
    return sum(n for k, n in s["by_path"].items() if pred(k))
feed1 = count(s1, lambda k: k == "GET /apps")
cv1 = count(s1, lambda k: k.endswith("/config-vars"))
feed_total = count(s2, lambda k: k == "GET /apps")
cv2 = count(s2, lambda k: k.endswith("/config-vars"))
changes = int(e["CHANGES"])
per_poll = feed1 / float(e["MEASURE"])            # polled every second
per_change = (cv2 - cv1) / changes
interval = float(e["INTERVAL"])
n = int(e["NCLUSTERS"])
feed_h = per_poll * 3600 / interval
print("\nheroku-pg-resolve watch, 50 apps watched, one cluster notified\n")
print("| latency (ms) | median | p95 | max |")
print("| --- | --- | --- | --- |")
for line in open(sys.argv[1]):
    parts = line.strip().split("|")
    if len(parts) == 4:
        print("| %s | %s | %s | %s |" % tuple(parts))
    else:
        print("\n%s: %s" % tuple(parts))
print("\nmeasured: %d GET /apps in %s s of a quiet feed polled every second (%d answered 304), "
      "%d config-vars requests while quiet; %d config-vars requests for %d changes "
      "(%.2f per change)" % (feed1, e["MEASURE"], s1["not_modified"], cv1, cv2 - cv1, changes, per_change))
print("\nAPI requests per hour, %d clusters x %s apps, feed every %g s, C config var changes an hour"
      " (each cluster's heroku_resolver_refresh() of a changed app asks the API once, in both set-ups;"
      " the stand-in used here asks nothing):\n" % (n, e["NAPPS"], interval))
print("| set-up | feed | watcher per change | clusters per change | total at C = 50 |")
print("| --- | --- | --- | --- | --- |")
print("| one watcher notifying the %d clusters | %.0f | %.2f | %d | %.0f |"
      % (n, feed_h, per_change, n, feed_h + 50 * (per_change + n)))
print("| each cluster polling its own feed | %.0f | 0 | %d | %.0f |" % (n * feed_h, n, n * feed_h + 50 * n))
PYEOF
