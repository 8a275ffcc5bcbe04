# shellcheck shell=bash
# Sourced by the memory checks of heroku-pg-resolve watch (asan_watch.sh, valgrind_watch.sh):
# run one watcher, under whatever tool the caller puts in front of it, through its paths against
# the mock: start-up, a webhook delivered by the mock, every refusal of the receiver (no and bad
# signatures, wrong methods and path, text/plain, bodies over 1 MiB, bad JSON, another resource,
# an unknown app, a replayed delivery) with nothing changed and no API request made, a burst of
# 100 events, /healthz, the release feed, an API outage and its retry, a cluster that is down,
# SIGHUP, then SIGTERM.  Needs the test environment's variables (test/run-tests.sh sets them)
# and the checkout as the working directory.
#
#   watch_setup NAME TOOL   NAME: the check's name in messages; TOOL: a program it needs (from
#                           test/install-deps.sh).  Makes $WATCH_WORK, cleaned up at exit.
#   watch_build CC FLAGS... build the command (every file of it and of the core) with the
#                           compiler CC and FLAGS as $WATCH_WORK/heroku-pg-resolve
#   watch_drive PORT SLOW CMD...
#       PORT: the port the watcher listens on; SLOW: how many times longer than natively its
#       waits may take (1 natively, 20 under valgrind); CMD...: the watcher's command line up
#       to "watch" (the tool, its options, the binary).  Prints "ok - ..." or "NAME: FAILED:
#       ..." per check.  Returns 1 if any failed; leaves the watcher's exit status in WATCH_RC
#       and its standard error in $WATCH_WORK/err (the caller checks its tool's report there,
#       with watch_check, then calls watch_drive_end).
#   watch_drive_end         print the log's tail (no password line) when something failed,
#                           clean up, and exit 1 if anything failed, else say it is clean

WATCH_PY=/usr/bin/python3
WATCH_MOCKCTL=test/mockctl.py
WATCH_APP=memcheck-watch-app
WATCH_WORK=''
WATCH_PID=''
WATCH_RC=''
WATCH_FAILED=0
WATCH_SETTINGS=''
WATCH_NAME=''

watch_setup() {
	WATCH_NAME=$1
	: "${HEROKU_MOCK_URL:?run through test/run-tests.sh}"
	command -v "$2" >/dev/null || { echo "$WATCH_NAME: $2 not found (test/install-deps.sh installs it)"; exit 1; }
	WATCH_WORK=$(mktemp -d)
	chmod 700 "$WATCH_WORK"
	trap watch_cleanup EXIT
}

watch_build() {
	local cc=$1 version incdir
	shift
	version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
	incdir=$(pg_config --includedir)
	"$cc" "$@" -D_GNU_SOURCE "-DHR_VERSION=\"$version\"" -I. -Isrc -Iclient "-I$incdir" \
		-o "$WATCH_WORK/heroku-pg-resolve" client/heroku-pg-resolve.c client/hr_service.c \
		client/hr_service_file.c client/hr_exec.c client/hr_watch*.c src/hr_*.c client/hr_client.c \
		-lcurl -ljson-c -lpq -lmicrohttpd -lcrypto -lpthread
}

watch_cleanup() {
	if [[ -n $WATCH_PID ]]; then
		if kill -TERM "$WATCH_PID" 2>/dev/null; then wait "$WATCH_PID" 2>/dev/null || true; fi
		WATCH_PID=''
	fi
	"$WATCH_PY" "$WATCH_MOCKCTL" clear-faults >/dev/null 2>&1 || true
	"$WATCH_PY" "$WATCH_MOCKCTL" delete-app "$WATCH_APP" >/dev/null 2>&1 || true
	if [[ -n $WATCH_SETTINGS ]]; then
		local backoff attempts
		read -r backoff attempts < <("$WATCH_PY" -c 'import json, sys; s = json.loads(sys.argv[1]); print(s["backoff"], s["max_attempts"])' "$WATCH_SETTINGS")
		"$WATCH_PY" "$WATCH_MOCKCTL" webhook-settings --backoff "$backoff" --attempts "$attempts" >/dev/null 2>&1 || true
		WATCH_SETTINGS=''
	fi
	if [[ -n $WATCH_WORK ]]; then rm -rf "$WATCH_WORK"; fi
	WATCH_WORK=''
}

# watch_check WHAT COMMAND...: run, report
watch_check() {
	local what=$1
	shift
	if "$@"; then
		echo "ok - $what"
	else
		echo "$WATCH_NAME: FAILED: $what"
		WATCH_FAILED=1
	fi
}

# watch_until SECONDS COMMAND...: true once COMMAND is, polled every 0.1 s
watch_until() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

watch_cv_requests() { "$WATCH_PY" "$WATCH_MOCKCTL" counts --path "/apps/$WATCH_APP/config-vars"; }

watch_drive() {
	local port=$1 slow=$2 secret closed before after burst_before
	shift 2
	WATCH_FAILED=0

	secret="memcheck-$(openssl rand -hex 12)"
	printf '%s\n' "$secret" >"$WATCH_WORK/secret"
	"$WATCH_PY" "$WATCH_MOCKCTL" put-app "$WATCH_APP" --var "DATABASE_URL=postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/d" >/dev/null
	WATCH_SETTINGS=$("$WATCH_PY" "$WATCH_MOCKCTL" webhook-settings)
	"$WATCH_PY" "$WATCH_MOCKCTL" webhook-settings --backoff 0.2 --attempts 2 >/dev/null
	"$WATCH_PY" "$WATCH_MOCKCTL" add-webhook "$WATCH_APP" "http://127.0.0.1:$port/webhooks/heroku" --secret "$secret" >/dev/null

	# a closed port: the cluster that is down
	closed=$("$WATCH_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	HEROKU_API_URL=$HEROKU_MOCK_URL "$@" watch --api-key-file "$HR_API_KEY_FILE" --service "a=$WATCH_APP" \
		--service "m=myapp" --service-file "$WATCH_WORK/pg_service.conf" --app other-app \
		--db "host=127.0.0.1 port=$closed dbname=x connect_timeout=2" --interval 300ms \
		--listen "127.0.0.1:$port" --webhook-secret-file "$WATCH_WORK/secret" 2>"$WATCH_WORK/err" &
	WATCH_PID=$!
	watch_until $((10 * slow)) grep -q 'watching' "$WATCH_WORK/err"
	watch_check 'the watcher started' grep -q 'watching 3 apps' "$WATCH_WORK/err"

	# the receiver: an event applied, then every refusal; each answer's status is printed
	before=$(watch_cv_requests)
	cp "$WATCH_WORK/pg_service.conf" "$WATCH_WORK/before.conf"
	SECRET=$secret PORT=$port APP=$WATCH_APP "$WATCH_PY" - >"$WATCH_WORK/statuses" <<'PYEOF'
import base64, hashlib, hmac, http.client, json, os, socket, uuid
port, secret, app = int(os.environ["PORT"]), os.environ["SECRET"].encode(), os.environ["APP"]
def req(method, path, body=b"", sig=True, ctype="application/json", key=secret, text=False, signed=None):
    h = {"Content-Type": ctype}
    if sig:
        signed = body if signed is None else signed
        h["Heroku-Webhook-Hmac-SHA256"] = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return "%d %s" % (r.status, r.read().decode(errors="replace")) if text else r.status
    except OSError:
        return 0
    finally:
        c.close()
def over_1mib(chunked):
    # the receiver may answer 413 and hang up before the body is all sent: a failed send is
    # expected, and the answer is read all the same (http.client would give up at the send)
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    chunk = b"x" * 65536
    try:
        if chunked:
            s.sendall(b"POST /webhooks/heroku HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for _ in range(17):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
        else:
            body = b"x" * (1024 * 1024 + 10)
            s.sendall(b"POST /webhooks/heroku HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            s.sendall(body)
    except OSError:
        pass
    try:
        line = s.makefile("rb").readline().decode(errors="replace")
    except OSError:
        line = ""
    s.close()
    return int(line.split()[1]) if line.startswith("HTTP/") else 0
def event(name=app, resource="release", delivery=None):
    return json.dumps({"resource": resource, "data": {"app": {"name": name}},
                       "webhook_metadata": {"delivery": {"id": delivery or str(uuid.uuid4())}}}).encode()
hook = "/webhooks/heroku"
d = event(delivery="11111111-1111-4111-8111-111111111111")
print("applied", req("POST", hook, d))
replayed = req("POST", hook, d, text=True)
print("replayed", replayed.split()[0], "duplicate" if "duplicate" in replayed else "not-acknowledged-as-duplicate")
for what, got in [("unsigned", req("POST", hook, event(), sig=False)),
                  ("wrong key", req("POST", hook, event(), key=b"nope")),
                  ("signature of another body", req("POST", hook, d + b" ", signed=d)),
                  ("bad json", req("POST", hook, b'{"resource": ')),
                  ("json array", req("POST", hook, b"[]")),
                  ("release without an app", req("POST", hook, b'{"resource":"release","data":{}}')),
                  ("other resource", req("POST", hook, event(resource="build"))),
                  ("unknown app", req("POST", hook, event(name="no-such-app"))),
                  ("text/plain", req("POST", hook, event(), ctype="text/plain")),
                  ("too large", over_1mib(False)),
                  ("too large, chunked", over_1mib(True)),
                  ("GET hook", req("GET", hook)), ("PUT hook", req("PUT", hook, event())),
                  ("other path", req("POST", "/x", event())),
                  ("healthz", req("GET", "/healthz")), ("POST healthz", req("POST", "/healthz", b"{}"))]:
    print(what, got)
PYEOF
	watch_check 'receiver answers' diff -u - "$WATCH_WORK/statuses" <<'EOF2'
applied 200
replayed 200 duplicate
unsigned 401
wrong key 401
signature of another body 401
bad json 400
json array 400
release without an app 400
other resource 202
unknown app 202
text/plain 415
too large 413
too large, chunked 413
GET hook 405
PUT hook 405
other path 404
healthz 200
POST healthz 405
EOF2
	# the first event made one request; nothing after it made any or changed the file (the
	# feed may follow the app once more when its release fell in the second of a listing:
	# one conditional request, never one per refusal)
	sleep 1.1
	after=$(watch_cv_requests)
	watch_check "refusals and the replay: no API request (the applied event and the feed made $((after - before)))" \
		test "$after" -ge $((before + 1)) -a "$after" -le $((before + 2))
	watch_check 'refusals and the replay: the service file is unchanged' \
		cmp -s "$WATCH_WORK/pg_service.conf" "$WATCH_WORK/before.conf"

	# a burst: 100 events, two waves of 50 connections at once
	burst_before=$(watch_cv_requests)
	SECRET=$secret PORT=$port APP=$WATCH_APP "$WATCH_PY" - >"$WATCH_WORK/burst" <<'PYEOF'
import base64, hashlib, hmac, json, os, socket, time, uuid
port, secret, app = int(os.environ["PORT"]), os.environ["SECRET"].encode(), os.environ["APP"]
def raw():
    body = json.dumps({"resource": "release", "data": {"app": {"name": app}},
                       "webhook_metadata": {"delivery": {"id": str(uuid.uuid4())}}}).encode()
    sig = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
    return (b"POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nHeroku-Webhook-Hmac-SHA256: " + sig +
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
t0 = time.monotonic()
ok = 0
for wave in (1, 2):
    socks = []
    for i in range(50):
        try:
            # from 10 addresses, as Heroku's deliveries: at most 8 of one address at once
            s = socket.create_connection(("127.0.0.1", port), timeout=120,
                                         source_address=("127.0.0.%d" % (2 + i % 10), 0))
            s.sendall(raw())
            socks.append(s)
        except OSError:
            pass
    for s in socks:
        try:
            line = s.makefile("rb").readline()
            ok += line.startswith(b"HTTP/1.1 200") or line.startswith(b"HTTP/1.0 200")
        except OSError:
            pass
        s.close()
print(ok, int(time.monotonic() - t0))
PYEOF
	local burst_ok burst_secs burst_requests
	read -r burst_ok burst_secs <"$WATCH_WORK/burst"
	burst_requests=$(($(watch_cv_requests) - burst_before))
	watch_check "burst: all 100 events answered 200 ($burst_ok)" test "$burst_ok" = 100
	watch_check "burst: $burst_requests API requests in ${burst_secs}s (at most about one a second)" \
		test "$burst_requests" -le $((burst_secs + 2))
	watch_check 'burst: the service file is unchanged' \
		cmp -s "$WATCH_WORK/pg_service.conf" "$WATCH_WORK/before.conf"

	# a change, delivered by the mock; the feed sees it too
	"$WATCH_PY" "$WATCH_MOCKCTL" clear-deliveries >/dev/null
	"$WATCH_PY" "$WATCH_MOCKCTL" set-var "$WATCH_APP" DATABASE_URL "postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/d2" >/dev/null
	"$WATCH_PY" "$WATCH_MOCKCTL" wait-deliveries 1 --app "$WATCH_APP" --timeout $((30 * slow)) >/dev/null || true
	watch_until $((5 * slow)) grep -q 'dbname=d2' "$WATCH_WORK/pg_service.conf"
	watch_check 'the change reached the service file' grep -q 'dbname=d2' "$WATCH_WORK/pg_service.conf"
	# an outage, and the retry
	"$WATCH_PY" "$WATCH_MOCKCTL" fault status --status 503 --path '/config-vars$' --count 2 >/dev/null
	"$WATCH_PY" "$WATCH_MOCKCTL" set-var "$WATCH_APP" DATABASE_URL "postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/d3" >/dev/null
	watch_until $((15 * slow)) grep -q 'dbname=d3' "$WATCH_WORK/pg_service.conf"
	watch_check 'the change made during an outage arrived' grep -q 'dbname=d3' "$WATCH_WORK/pg_service.conf"
	"$WATCH_PY" "$WATCH_MOCKCTL" set-var other-app MEMCHECK_WATCH "$(date +%s%N)" >/dev/null
	sleep 1
	kill -HUP "$WATCH_PID"
	watch_until $((5 * slow)) grep -q 'SIGHUP: token and webhook secret read again' "$WATCH_WORK/err"
	kill -TERM "$WATCH_PID"
	WATCH_RC=0
	wait "$WATCH_PID" || WATCH_RC=$?
	WATCH_PID=''
	watch_check 'exit status 0 after SIGTERM' test "$WATCH_RC" = 0
	watch_check 'the cluster that is down was retried' grep -q 'could not notify app' "$WATCH_WORK/err"
	watch_check 'SIGHUP was logged' grep -q 'SIGHUP: token and webhook secret read again' "$WATCH_WORK/err"
	watch_check 'stopped' grep -q 'stopped$' "$WATCH_WORK/err"
	watch_check 'no secret in the log' bash -c "! grep -qF -e '$secret' -e \"\$(head -n1 \"\$HR_API_KEY_FILE\")\" '$WATCH_WORK/err'"
	return "$WATCH_FAILED"
}

watch_drive_end() {
	local failed=$WATCH_FAILED
	if ((failed)) && [[ -f $WATCH_WORK/err ]]; then
		grep -v -i 'postgres://\|password' "$WATCH_WORK/err" | tail -40
	fi
	watch_cleanup
	if ((failed)); then
		echo "$WATCH_NAME: FAILED"
		exit 1
	fi
	echo "$WATCH_NAME: heroku-pg-resolve watch clean"
}
