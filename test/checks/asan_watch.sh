#!/usr/bin/env bash
# heroku-pg-resolve watch under AddressSanitizer + UBSan: build the command with
# -fsanitize=address,undefined and run a watcher through its paths against the mock: start-up,
# a webhook delivered by the mock, every refusal of the receiver, /healthz, the release feed,
# an API outage and its retry, a cluster that is down, SIGHUP, then SIGTERM.  Any sanitizer
# report, leak included, or an exit status other than 0 fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "asan-watch: $*"; }
: "${HEROKU_MOCK_URL:?run through test/run-tests.sh}"
command -v clang >/dev/null || { say "clang not found (test/install-deps.sh installs it)"; exit 1; }

PORT=${HR_WATCH_ASAN_PORT:-50398}
PY=/usr/bin/python3
MOCKCTL=test/mockctl.py
APP=asan-watch-app
work=$(mktemp -d)
pid=''
cleanup() {
	[[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	"$PY" "$MOCKCTL" clear-faults >/dev/null 2>&1 || true
	"$PY" "$MOCKCTL" delete-app "$APP" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
chmod 700 "$work"

version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
incdir=$(pg_config --includedir)
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
	-D_GNU_SOURCE "-DHR_VERSION=\"$version\"" -I. -Isrc -Iclient "-I$incdir")
clang "${flags[@]}" -o "$work/heroku-pg-resolve" client/heroku-pg-resolve.c client/hr_service.c \
	client/hr_service_file.c client/hr_exec.c client/hr_watch*.c src/hr_*.c client/hr_client.c \
	-lcurl -ljson-c -lpq -lmicrohttpd -lcrypto -lpthread

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export HEROKU_API_URL=$HEROKU_MOCK_URL
secret="asan-$(openssl rand -hex 12)"
printf '%s\n' "$secret" >"$work/secret"
"$PY" "$MOCKCTL" put-app "$APP" --var "DATABASE_URL=postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/d" >/dev/null
settings=$("$PY" "$MOCKCTL" webhook-settings)
"$PY" "$MOCKCTL" webhook-settings --backoff 0.2 --attempts 2 >/dev/null
"$PY" "$MOCKCTL" add-webhook "$APP" "http://127.0.0.1:$PORT/webhooks/heroku" --secret "$secret" >/dev/null

# a closed port: the cluster that is down
closed=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$work/heroku-pg-resolve" watch --api-key-file "$HR_API_KEY_FILE" --service "a=$APP" \
	--service "m=myapp" --service-file "$work/pg_service.conf" --app other-app \
	--db "host=127.0.0.1 port=$closed dbname=x connect_timeout=2" --interval 300ms \
	--listen "127.0.0.1:$PORT" --webhook-secret-file "$work/secret" 2>"$work/err" &
pid=$!

fail=0
check() { # check WHAT COMMAND...: run, report
	local what=$1
	shift
	if "$@"; then echo "ok - $what"; else say "FAILED: $what"; fail=1; fi
}
for _ in $(seq 100); do grep -q 'watching' "$work/err" 2>/dev/null && break; sleep 0.1; done
check 'the watcher started' grep -q 'watching 3 apps' "$work/err"

# requests to the receiver (signed with the secret unless told otherwise); prints the statuses
SECRET=$secret PORT=$PORT APP=$APP "$PY" - >"$work/statuses" <<'PYEOF'
import base64, hashlib, hmac, http.client, json, os, uuid
port, secret, app = int(os.environ["PORT"]), os.environ["SECRET"].encode(), os.environ["APP"]
def req(method, path, body=b"", sig=True, ctype="application/json", key=secret):
    h = {"Content-Type": ctype}
    if sig:
        h["Heroku-Webhook-Hmac-SHA256"] = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body, headers=h)
        return c.getresponse().status
    except OSError:
        return 0
    finally:
        c.close()
def event(name=app, resource="release", delivery=None):
    return json.dumps({"resource": resource, "data": {"app": {"name": name}},
                       "webhook_metadata": {"delivery": {"id": delivery or str(uuid.uuid4())}}}).encode()
hook = "/webhooks/heroku"
d = event(delivery="11111111-1111-4111-8111-111111111111")
for what, got in [("applied", req("POST", hook, d)), ("replayed", req("POST", hook, d)),
                  ("unsigned", req("POST", hook, event(), sig=False)),
                  ("wrong key", req("POST", hook, event(), key=b"nope")),
                  ("bad json", req("POST", hook, b'{"resource": ')),
                  ("other resource", req("POST", hook, event(resource="build"))),
                  ("unknown app", req("POST", hook, event(name="no-such-app"))),
                  ("text/plain", req("POST", hook, event(), ctype="text/plain")),
                  ("too large", req("POST", hook, b"x" * (1024 * 1024 + 10))),
                  ("GET hook", req("GET", hook)), ("other path", req("POST", "/x", event())),
                  ("healthz", req("GET", "/healthz"))]:
    print(what, got)
PYEOF
check 'receiver answers' diff -u - "$work/statuses" <<'EOF2'
applied 200
replayed 200
unsigned 401
wrong key 401
bad json 400
other resource 202
unknown app 202
text/plain 415
too large 413
GET hook 405
other path 404
healthz 200
EOF2

# a change, delivered by the mock; the feed sees it too
"$PY" "$MOCKCTL" clear-deliveries >/dev/null
"$PY" "$MOCKCTL" set-var "$APP" DATABASE_URL "postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/d2" >/dev/null
"$PY" "$MOCKCTL" wait-deliveries 1 --app "$APP" >/dev/null
check 'the change reached the service file' grep -q 'dbname=d2' "$work/pg_service.conf"
# an outage, and the retry
"$PY" "$MOCKCTL" fault status --status 503 --path '/config-vars$' --count 2 >/dev/null
"$PY" "$MOCKCTL" set-var "$APP" DATABASE_URL "postgres://u:$(openssl rand -hex 8)@127.0.0.1:5432/d3" >/dev/null
for _ in $(seq 150); do grep -q 'dbname=d3' "$work/pg_service.conf" && break; sleep 0.1; done
check 'the change made during an outage arrived' grep -q 'dbname=d3' "$work/pg_service.conf"
"$PY" "$MOCKCTL" set-var other-app ASAN_WATCH "$(date +%s%N)" >/dev/null
sleep 1
kill -HUP "$pid"
sleep 0.5
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=''
check 'exit status 0 after SIGTERM' test "$rc" = 0
check 'no sanitizer report' bash -c "! grep -q 'Sanitizer' '$work/err'"
check 'the cluster that is down was retried' grep -q 'could not notify app' "$work/err"
check 'SIGHUP was logged' grep -q 'SIGHUP: token and webhook secret read again' "$work/err"
check 'stopped' grep -q 'stopped$' "$work/err"
check 'no secret in the log' bash -c "! grep -qF -e '$secret' -e \"\$(head -n1 \"\$HR_API_KEY_FILE\")\" '$work/err'"
read -r backoff attempts < <("$PY" -c 'import json, sys; s = json.loads(sys.argv[1]); print(s["backoff"], s["max_attempts"])' "$settings")
"$PY" "$MOCKCTL" webhook-settings --backoff "$backoff" --attempts "$attempts" >/dev/null
if ((fail)); then
	grep -v -i 'postgres://\|password' "$work/err" | tail -40
	say "FAILED"
	exit 1
fi
say "heroku-pg-resolve watch clean under ASan+UBSan"
