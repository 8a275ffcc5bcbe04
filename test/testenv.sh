#!/usr/bin/env bash
# The heroku_resolver test environment: a mock of the Heroku Platform API and four PostgreSQL
# clusters ("local" runs the extension; "remote" and "remote2" stand in for Heroku Postgres and
# accept only TLS; "mtls" stands in for a Private or Shield database reached over mutual TLS: it
# also wants a client certificate signed by a CA made at start, on top of the password). Everything lives under $HR_TEST_DIR and is owned by the postgres OS user,
# because initdb, postgres and pg_regress refuse to run as root.
#
#   bash test/testenv.sh start|stop|status
#
# After start, `. "$HR_TEST_DIR/env.sh"` gives ports and file paths (never secret values).
#
# HR_PGBIN is the installation every cluster runs (default the system's 15). HR_LOCAL_PGBIN runs
# the local cluster from another one (another major: test/checks/versions.sh), with
# HR_LOCAL_LIBRARY_PATH put before LD_LIBRARY_PATH for that cluster's programs only.
set -euo pipefail

PGBIN=${HR_PGBIN:-/usr/lib/postgresql/15/bin}
LOCAL_PGBIN=${HR_LOCAL_PGBIN:-$PGBIN}
LOCAL_LIBRARY_PATH=${HR_LOCAL_LIBRARY_PATH:-}
# Debian's interpreter, not whatever a version manager puts first in PATH.
PY=/usr/bin/python3
HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}
HR_MOCK_PORT=${HR_MOCK_PORT:-29380}
HR_MOCK_TLS_PORT=${HR_MOCK_TLS_PORT:-29381}
HR_LOCAL_PORT=${HR_LOCAL_PORT:-29330}
HR_REMOTE_PORT=${HR_REMOTE_PORT:-29331}
HR_REMOTE2_PORT=${HR_REMOTE2_PORT:-29332}
HR_MTLS_PORT=${HR_MTLS_PORT:-29333}
REPO_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Proves a directory was made by this script before anything in it is deleted.
MARKER=.heroku_resolver_test
CLUSTERS=(local remote remote2 mtls)
MYAPP_ID=3f0a4c1e-8a6b-4d6e-9a51-2b7c9d0e1f23
QUIRKY_ID=7c2e9b4d-1f3a-4e5b-8c6d-0a1b2c3d4e5f
OTHER_ID=9d8c7b6a-5e4f-4a3b-9c2d-1e0f2a3b4c5d
PRIVATE_ID=5b1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f

die() {
	echo "testenv: $*" >&2
	exit 1
}
say() { echo "testenv: $*"; }

# Prefix that runs a command as the postgres OS user (empty if we already are that user).
AS_PG=()
if [[ $(id -u) -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi
as_pg() { "${AS_PG[@]}" "$@"; }

# as_pg_cluster NAME PROGRAM ARGS...: as_pg, running PROGRAM of the installation of cluster NAME.
as_pg_cluster() {
	local c=$1 prog=$2
	shift 2
	if [[ $c != local ]]; then
		as_pg "$PGBIN/$prog" "$@"
	elif [[ -n $LOCAL_LIBRARY_PATH ]]; then
		as_pg env LD_LIBRARY_PATH="$LOCAL_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
			"$LOCAL_PGBIN/$prog" "$@"
	else
		as_pg "$LOCAL_PGBIN/$prog" "$@"
	fi
}

# Log tails may be shown on failure: hide anything shaped like a token or a URL password.
mask() {
	sed -E 's/HRKU-[0-9A-Za-z_-]+/HRKU-****/g; s#(://[^:/@ ]*:)[^@ ]*@#\1****@#g'
}

check_setup() {
	id postgres >/dev/null 2>&1 || die "no postgres OS user: run test/install-deps.sh first"
	[[ -x "$PGBIN/initdb" ]] || die "$PGBIN/initdb not found: run test/install-deps.sh first"
	[[ -x "$LOCAL_PGBIN/initdb" ]] || die "$LOCAL_PGBIN/initdb (HR_LOCAL_PGBIN) not found"
	[[ -x $PY ]] || die "$PY not found: run test/install-deps.sh first"
	if [[ $(id -u) -ne 0 && $(id -u) -ne $(id -u postgres) ]]; then
		die "run as root or as postgres"
	fi
	# The path goes into postgresql.conf, socket paths and URLs: keep it plain.
	[[ "$HR_TEST_DIR" =~ ^/[A-Za-z0-9._/-]+$ && "$HR_TEST_DIR" != / ]] ||
		die "HR_TEST_DIR must be an absolute path of [A-Za-z0-9._/-], not /"
	local p
	for p in "$HR_MOCK_PORT" "$HR_MOCK_TLS_PORT" "$HR_LOCAL_PORT" "$HR_REMOTE_PORT" "$HR_REMOTE2_PORT" "$HR_MTLS_PORT"; do
		if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1024 || p > 65535)); then die "bad port: $p"; fi
	done
	local n
	n=$(printf '%s\n' "$HR_MOCK_PORT" "$HR_MOCK_TLS_PORT" "$HR_LOCAL_PORT" "$HR_REMOTE_PORT" "$HR_REMOTE2_PORT" "$HR_MTLS_PORT" | sort -u | wc -l)
	((n == 6)) || die "the six HR_*_PORT values must differ"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cluster_port() {
	case $1 in
	local) echo "$HR_LOCAL_PORT" ;;
	remote) echo "$HR_REMOTE_PORT" ;;
	remote2) echo "$HR_REMOTE2_PORT" ;;
	mtls) echo "$HR_MTLS_PORT" ;;
	esac
}

# local uses sock/ (that is PGHOST); each remote has its own socket directory.
cluster_sock() {
	case $1 in
	local) echo "$HR_TEST_DIR/sock" ;;
	*) echo "$HR_TEST_DIR/sock-$1" ;;
	esac
}

# PIDs of processes whose command line names this environment's files: postmasters of our data
# directories and the mock (it is given our tokens file). Used only to clean up after a crash.
leftover_pids() {
	local f pid cmd
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ $pid -ne $$ ]] || continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
		case $cmd in
		*"postgres -D $HR_TEST_DIR/"* | *"mock_heroku.py"*"$HR_TEST_DIR/tokens.json"*)
			echo "$pid"
			;;
		esac
	done
}

stop_mock() {
	local pidfile=$HR_TEST_DIR/mock.pid pid i
	[[ -f $pidfile ]] || return 0
	pid=$(head -n1 "$pidfile" 2>/dev/null || true)
	# Only signal the PID if it is still our mock, not a recycled PID.
	if [[ "$pid" =~ ^[0-9]+$ ]] && grep -q mock_heroku.py <<<"$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")"; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

cmd_stop() {
	local c data pid i pids
	[[ -d $HR_TEST_DIR ]] || return 0
	cd "$HR_TEST_DIR"
	for c in "${CLUSTERS[@]}"; do
		data=$HR_TEST_DIR/$c
		if [[ -f $data/postmaster.pid ]]; then
			as_pg_cluster "$c" pg_ctl -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
				say "pg_ctl stop failed for $c (see $HR_TEST_DIR/$c.log)"
		fi
	done
	stop_mock
	# Whatever survived (a crashed start, a deleted data directory): end it by PID.
	pids=$(leftover_pids)
	if [[ -n $pids ]]; then
		say "ending leftover processes: $(echo "$pids" | tr '\n' ' ')"
		for pid in $pids; do kill "$pid" 2>/dev/null || true; done
		for ((i = 0; i < 50; i++)); do
			pids=$(leftover_pids)
			[[ -n $pids ]] || break
			sleep 0.1
		done
		for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
	fi
	cd /
}

cmd_status() {
	local c rc=0 pid
	for c in "${CLUSTERS[@]}"; do
		if [[ -d $HR_TEST_DIR/$c ]] && as_pg_cluster "$c" pg_ctl -D "$HR_TEST_DIR/$c" status >/dev/null 2>&1; then
			echo "$c: running on port $(cluster_port "$c")"
		else
			echo "$c: not running"
			rc=1
		fi
	done
	pid=$(head -n1 "$HR_TEST_DIR/mock.pid" 2>/dev/null || true)
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && port_open "$HR_MOCK_PORT"; then
		echo "mock: running (pid $pid) on ports $HR_MOCK_PORT and $HR_MOCK_TLS_PORT (TLS)"
	else
		echo "mock: not running"
		rc=1
	fi
	return $rc
}

# Delete and recreate $HR_TEST_DIR, but only if this script made it (or it is empty).
fresh_dir() {
	case $REPO_TOP/ in
	"$HR_TEST_DIR"/*) die "refusing to run from inside HR_TEST_DIR ($REPO_TOP): it is deleted on start" ;;
	esac
	if [[ -e $HR_TEST_DIR ]]; then
		if [[ -f $HR_TEST_DIR/$MARKER || -z "$(ls -A "$HR_TEST_DIR")" ]]; then
			rm -rf "$HR_TEST_DIR"
		else
			die "$HR_TEST_DIR exists and was not made by this script: remove it or set HR_TEST_DIR"
		fi
	fi
	mkdir -p "$(dirname "$HR_TEST_DIR")"
	mkdir -m 0700 "$HR_TEST_DIR"
	touch "$HR_TEST_DIR/$MARKER"
	if [[ $(id -u) -eq 0 ]]; then chown -R postgres:postgres "$HR_TEST_DIR"; fi
	as_pg test -w "$HR_TEST_DIR" -a -x "$HR_TEST_DIR" ||
		die "postgres cannot use $HR_TEST_DIR (is a parent directory closed to it?)"
}

# The tests read their inputs from a copy the postgres user can read and write: the checkout
# itself may be closed to that user.
copy_repo() {
	mkdir "$HR_TEST_DIR/src"
	# Leave out git's data and the output of earlier local test runs.
	tar -C "$REPO_TOP" --exclude=./.git --exclude=./results --exclude=./tmp_check --exclude=./log \
		--exclude='./regression.*' --exclude=./fuzz/work --exclude=./fuzz/out -cf - . | tar -C "$HR_TEST_DIR/src" -xf -
}

# A throwaway CA and certificates. Good ones last 30 days; the expired ones are made with
# `openssl ca -startdate/-enddate`, since OpenSSL 3.0's req/x509 refuse a negative -days and
# have no -not_after.
make_tls() {
	local t=$HR_TEST_DIR/tls
	mkdir -m 0755 "$t" "$t/ca-db"
	touch "$t/ca-db/index.txt"
	cat >"$t/openssl.cnf" <<'CNF'
[ca]
default_ca = throwaway
[throwaway]
dir = .
database = $dir/ca-db/index.txt
new_certs_dir = $dir/ca-db
rand_serial = yes
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[anything]
commonName = supplied
organizationName = optional
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[v3_client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[v3_wrong]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
CNF
	(
		cd "$t"
		umask 077
		# key NAME: a P-256 key (fast to make, accepted by OpenSSL, libpq, libcurl and Python).
		key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
		csr() { openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"; }
		# sign NAME CA_CERT CA_KEY EXTENSIONS DATE_OPTIONS...
		sign() {
			local name=$1 cacert=$2 cakey=$3 ext=$4
			shift 4
			openssl ca -batch -notext -config openssl.cnf -in "$name.csr" -out "$name.crt" \
				-cert "$cacert" -keyfile "$cakey" -extensions "$ext" "$@" 2>/dev/null
		}
		# selfsign NAME KEY_NAME EXTENSIONS DATE_OPTIONS...
		selfsign() {
			local name=$1 keyname=$2 ext=$3
			shift 3
			openssl ca -batch -notext -config openssl.cnf -selfsign -in "$name.csr" -out "$name.crt" \
				-keyfile "$keyname.key" -extensions "$ext" "$@" 2>/dev/null
		}
		key ca
		csr ca "/O=heroku_resolver tests/CN=heroku_resolver test CA"
		selfsign ca ca v3_ca -days 30
		key server
		csr server "/O=heroku_resolver tests/CN=localhost"
		sign server ca.crt ca.key v3_server -days 30
		key wrong-name
		csr wrong-name "/O=heroku_resolver tests/CN=wrong.example"
		sign wrong-name ca.crt ca.key v3_wrong -days 30
		# A separate CA that expired in 2020, and a server certificate it signed (expired too).
		key expired-ca
		csr expired-ca "/O=heroku_resolver tests/CN=heroku_resolver expired CA"
		selfsign expired-ca expired-ca v3_ca -startdate 20200101000000Z -enddate 20200201000000Z
		key expired-server
		csr expired-server "/O=heroku_resolver tests/CN=localhost"
		sign expired-server expired-ca.crt expired-ca.key v3_server \
			-startdate 20200102000000Z -enddate 20200130000000Z
		# The test CA's own key and name in a certificate that expired: as a CA file it makes
		# the running mock and remotes fail with "certificate has expired".
		cp ca.csr ca-expired.csr
		selfsign ca-expired ca v3_ca -startdate 20200101000000Z -enddate 20200201000000Z
		# Mutual TLS (the "mtls" cluster): a CA of its own for client certificates, as a
		# Private Space's; a client certificate good for a year; one that ends in 10 days
		# (the expiry warnings); one from another CA (refused by the cluster).
		key client-ca
		csr client-ca "/O=heroku_resolver tests/CN=heroku_resolver client CA"
		selfsign client-ca client-ca v3_ca -days 400
		key client
		csr client "/O=heroku_resolver tests/CN=mtls_user"
		sign client client-ca.crt client-ca.key v3_client -days 365
		key client-short
		csr client-short "/O=heroku_resolver tests/CN=mtls_user"
		sign client-short client-ca.crt client-ca.key v3_client -days 10
		key client-rogue
		csr client-rogue "/O=heroku_resolver tests/CN=mtls_user"
		selfsign client-rogue client-rogue v3_client -days 365
		rm -f ./*.csr
	)
	chmod 0644 "$t"/*.crt
	chmod 0600 "$t"/*.key
	openssl verify -CAfile "$t/ca.crt" "$t/server.crt" "$t/wrong-name.crt" >/dev/null ||
		die "generated certificates do not verify"
	openssl verify -CAfile "$t/client-ca.crt" "$t/client.crt" "$t/client-short.crt" >/dev/null ||
		die "generated client certificates do not verify"
}

# Write a SQL string literal (standard_conforming_strings is on: only ' needs doubling).
sql_lit() {
	local s=${1//\'/\'\'}
	printf "'%s'" "$s"
}

# psql as postgres over a cluster's unix socket; the SQL comes on stdin so that passwords
# never appear in a command line. Statement logging is off so they stay out of server logs.
pg_sql() {
	local c=$1 db=$2
	{
		printf '%s\n' "SET log_statement = 'none';" "SET log_min_error_statement = 'panic';"
		cat
	} | as_pg env PGCLIENTENCODING=UTF8 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse \
		-h "$(cluster_sock "$c")" -p "$(cluster_port "$c")" -U postgres -d "$db" >/dev/null
}

init_cluster() {
	local c=$1 data=$HR_TEST_DIR/$1 sock conf
	sock=$(cluster_sock "$c")
	as_pg mkdir -m 0700 "$sock"
	as_pg_cluster "$c" initdb -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
		-E UTF8 --locale=C -N >"$HR_TEST_DIR/initdb-$c.log" 2>&1 ||
		die "initdb $c failed, see $HR_TEST_DIR/initdb-$c.log"
	conf=$data/postgresql.conf
	# Settings for a throwaway cluster: fast (no fsync) and logs that say who did what.
	cat >>"$conf" <<CONF

# --- heroku_resolver test environment ---
port = $(cluster_port "$c")
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 50
timezone = 'UTC'
lc_messages = 'C'
logging_collector = off
log_min_messages = info
log_line_prefix = '%m [%p] %q%u@%d '
log_statement = 'none'
CONF
	if [[ $c == local ]]; then
		local preload=${HR_LOCAL_PRELOAD:-}
		preload=${preload//\'/\'\'}
		# The extension's cluster logs everything (the secrets check reads it).
		cat >>"$conf" <<CONF
listen_addresses = '127.0.0.1'
shared_preload_libraries = '$preload'
# the "Heroku Postgres" clusters of this environment are local
heroku.allow_local_hosts = on
log_min_messages = debug5
log_error_verbosity = verbose
CONF
	else
		# Heroku Postgres stand-in: TLS only, as the real service is.
		cat >>"$conf" <<CONF
listen_addresses = '127.0.0.1,::1'
ssl = on
ssl_cert_file = '$HR_TEST_DIR/tls/server.crt'
ssl_key_file = '$HR_TEST_DIR/tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
log_connections = on
CONF
		if [[ $c == mtls ]]; then
			# a Private/Shield database from outside: the password and a client certificate
			echo "ssl_ca_file = '$HR_TEST_DIR/tls/client-ca.crt'" >>"$conf"
			cat >"$data/pg_hba.conf" <<'HBA'
local all postgres peer
hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca
hostssl all all ::1/128 scram-sha-256 clientcert=verify-ca
hostnossl all all all reject
HBA
		else
			cat >"$data/pg_hba.conf" <<'HBA'
local all postgres peer
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
hostnossl all all all reject
HBA
		fi
	fi
}

start_cluster() {
	local c=$1
	as_pg_cluster "$c" pg_ctl -D "$HR_TEST_DIR/$c" -l "$HR_TEST_DIR/$c.log" -w -t 60 start >/dev/null ||
		{
			tail -n 20 "$HR_TEST_DIR/$c.log" | mask >&2
			die "could not start cluster $c"
		}
}

# appdb with an orders table whose row count tells which remote answered; OWNER (default
# app_user) is the role of the app's URL.
setup_remote() {
	local c=$1 rows=$2 app_pw=$3 quirky_pw=${4:-} owner=${5:-app_user}
	{
		echo "CREATE ROLE $owner LOGIN PASSWORD $(sql_lit "$app_pw");"
		echo "CREATE DATABASE appdb OWNER $owner;"
		if [[ -n $quirky_pw ]]; then
			echo "CREATE ROLE quirky_user LOGIN PASSWORD $(sql_lit "$quirky_pw");"
			echo "GRANT CONNECT ON DATABASE appdb TO quirky_user;"
		fi
	} | pg_sql "$c" postgres
	{
		echo "CREATE TABLE orders (id int PRIMARY KEY, amount numeric);"
		echo "INSERT INTO orders SELECT g, g * 10.50 FROM generate_series(1, $rows) g;"
		echo "ALTER TABLE orders OWNER TO $owner;"
		if [[ -n $quirky_pw ]]; then
			echo "GRANT SELECT ON orders TO quirky_user;"
		fi
	} | pg_sql "$c" appdb
}

# tokens.json, mock-data.json and db-state.json (what rotate.sh knows about each app's URL).
# Secrets reach Python through its environment, never its command line.
write_mock_files() {
	HR_TOKEN=$1 HR_RO_TOKEN=$2 HR_APP_PW=$3 HR_APP2_PW=$4 HR_QUIRKY_PW=$5 HR_TOKEN2=$6 \
		HR_TOKEN_UUID=$7 HR_TOKEN_OAUTH=$8 \
		HR_MTLS_PW=$9 HR_MTLS_PORT=$HR_MTLS_PORT PRIVATE_ID=$PRIVATE_ID \
		HR_TEST_DIR=$HR_TEST_DIR HR_REMOTE_PORT=$HR_REMOTE_PORT HR_REMOTE2_PORT=$HR_REMOTE2_PORT \
		MYAPP_ID=$MYAPP_ID QUIRKY_ID=$QUIRKY_ID OTHER_ID=$OTHER_ID \
		"$PY" - <<'PYEOF'
import json, os
from urllib.parse import quote

e = os.environ
d = e["HR_TEST_DIR"]


def url(user, pw, port):
    return "postgres://%s:%s@127.0.0.1:%s/appdb" % (user, quote(pw, safe=""), port)


def write(name, obj):
    path = os.path.join(d, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


my_url = url("app_user", e["HR_APP_PW"], e["HR_REMOTE_PORT"])
quirky_url = url("quirky_user", e["HR_QUIRKY_PW"], e["HR_REMOTE_PORT"])
other_url = url("app_user", e["HR_APP2_PW"], e["HR_REMOTE2_PORT"])
private_url = url("mtls_user", e["HR_MTLS_PW"], e["HR_MTLS_PORT"])

write("tokens.json", {
    e["HR_TOKEN"]: {"email": "test@example.com", "scope": "global"},
    e["HR_RO_TOKEN"]: {"email": "ro@example.com", "scope": "read"},
    e["HR_TOKEN2"]: {"email": "second@example.com", "scope": "global"},
    # the same account's token in the two other forms users have: a legacy
    # API key (a UUID) and an OAuth access token (base64url)
    e["HR_TOKEN_UUID"]: {"email": "test@example.com", "scope": "global"},
    e["HR_TOKEN_OAUTH"]: {"email": "test@example.com", "scope": "global"},
})
write("mock-data.json", {"apps": {
    "myapp": {"id": e["MYAPP_ID"], "config_vars": {
        "DATABASE_URL": my_url,
        "HEROKU_POSTGRESQL_VIOLET_URL": my_url,
        "REDIS_URL": "redis://h:secret@127.0.0.1:6379",
        "NULL_VAR": None,
    }},
    "quirky-app": {"id": e["QUIRKY_ID"], "config_vars": {"DATABASE_URL": quirky_url}},
    "other-app": {"id": e["OTHER_ID"], "config_vars": {"DATABASE_URL": other_url}},
    "private-app": {"id": e["PRIVATE_ID"], "config_vars": {"DATABASE_URL": private_url}},
}})
# every password the run uses; rotate.sh appends, test/checks/secrets.sh reads
write_lines = [e["HR_APP_PW"], e["HR_APP2_PW"], e["HR_QUIRKY_PW"], e["HR_MTLS_PW"]]
hist = os.path.join(d, "secrets.history")
fd = os.open(hist, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write("".join(pw + "\n" for pw in write_lines))
write("db-state.json", {
    "myapp": {"url": my_url, "vars": ["DATABASE_URL", "HEROKU_POSTGRESQL_VIOLET_URL"]},
    "quirky-app": {"url": quirky_url, "vars": ["DATABASE_URL"]},
    "other-app": {"url": other_url, "vars": ["DATABASE_URL"]},
    "private-app": {"url": private_url, "vars": ["DATABASE_URL"]},
})
PYEOF
}

start_mock() {
	local src=$HR_TEST_DIR/src/test/mock_heroku.py i
	[[ -f $src ]] || die "$src not found (test/mock_heroku.py missing from the checkout)"
	# setsid: the mock must not share the caller's process group (a Ctrl-C or a dying runner).
	setsid "${AS_PG[@]}" "$PY" "$src" --port "$HR_MOCK_PORT" --tls-port "$HR_MOCK_TLS_PORT" \
		--tls-cert "$HR_TEST_DIR/tls/server.crt" --tls-key "$HR_TEST_DIR/tls/server.key" \
		--tokens-file "$HR_TEST_DIR/tokens.json" --data "$HR_TEST_DIR/mock-data.json" \
		--webhook-ca "$HR_TEST_DIR/tls/ca.crt" \
		--pidfile "$HR_TEST_DIR/mock.pid" --log "$HR_TEST_DIR/mock.log" \
		</dev/null >>"$HR_TEST_DIR/mock.out" 2>&1 &
	for ((i = 0; i < 150; i++)); do
		if port_open "$HR_MOCK_PORT" && port_open "$HR_MOCK_TLS_PORT" && [[ -s $HR_TEST_DIR/mock.pid ]]; then
			return 0
		fi
		if ! kill -0 $! 2>/dev/null; then break; fi
		sleep 0.1
	done
	cat "$HR_TEST_DIR/mock.out" "$HR_TEST_DIR/mock.log" 2>/dev/null | tail -n 30 | mask >&2
	die "the mock did not start listening on ports $HR_MOCK_PORT and $HR_MOCK_TLS_PORT"
}

# Symbolic links another user planted, for the service-file writer's tests (test/t/050_client.pl):
# only root can make a link owned by someone else, so they exist only when start runs as root,
# and env.sh sets HR_PLANTED_LINKS only then. Made after the last chown -R, which would make the
# links postgres's. The directories are postgres's (so that postgres can delete them); each link
# points at target.conf, postgres's own file:
#   sticky/  mode 1777, like /tmp:  foreign.conf (owned by nobody), root.conf (owned by root)
#   plain/   mode 0755:             foreign.conf (owned by nobody), root.conf (owned by root)
PLANTED=$HR_TEST_DIR/planted-links
make_planted_links() {
	local d
	[[ $(id -u) -eq 0 ]] || return 0
	mkdir -m 0755 "$PLANTED" "$PLANTED/plain"
	mkdir -m 1777 "$PLANTED/sticky"
	chmod 1777 "$PLANTED/sticky"
	printf '# planted-link target\n' >"$PLANTED/target.conf"
	chmod 0600 "$PLANTED/target.conf"
	chown postgres:postgres "$PLANTED" "$PLANTED/plain" "$PLANTED/sticky" "$PLANTED/target.conf"
	for d in sticky plain; do
		ln -s "$PLANTED/target.conf" "$PLANTED/$d/foreign.conf"
		chown -h 65534:65534 "$PLANTED/$d/foreign.conf" # nobody
		ln -s "$PLANTED/target.conf" "$PLANTED/$d/root.conf"
	done
}

write_env_sh() {
	local t=$HR_TEST_DIR/tls planted=''
	if [[ $(id -u) -eq 0 ]]; then planted=$PLANTED; fi
	cat >"$HR_TEST_DIR/env.sh" <<ENV
# heroku_resolver test environment: paths and ports only, no secret values.
export HR_TEST_DIR=$HR_TEST_DIR
export HR_REPO=$HR_TEST_DIR/src
export HR_PGBIN=$PGBIN
export HR_LOCAL_PGBIN=$LOCAL_PGBIN
export HR_LOCAL_LIBRARY_PATH=$LOCAL_LIBRARY_PATH
export HR_PYTHON=$PY
export PGHOST=$HR_TEST_DIR/sock
export PGPORT=$HR_LOCAL_PORT
export PGUSER=postgres
export PGDATABASE=postgres
export HR_LOCAL_PORT=$HR_LOCAL_PORT
export HR_REMOTE_PORT=$HR_REMOTE_PORT
export HR_REMOTE2_PORT=$HR_REMOTE2_PORT
export HR_MOCK_PORT=$HR_MOCK_PORT
export HR_MOCK_TLS_PORT=$HR_MOCK_TLS_PORT
export HEROKU_MOCK_URL=http://127.0.0.1:$HR_MOCK_PORT
export HEROKU_MOCK_TLS_URL=https://127.0.0.1:$HR_MOCK_TLS_PORT
export HR_MOCKCTL=$HR_TEST_DIR/src/test/mockctl.py
export HR_ROTATE=$HR_TEST_DIR/src/test/rotate.sh
export HR_MOCK_LOG=$HR_TEST_DIR/mock.log
export HR_TOKENS_FILE=$HR_TEST_DIR/tokens.json
export HR_API_KEY_FILE=$HR_TEST_DIR/api_key
export HR_READONLY_KEY_FILE=$HR_TEST_DIR/api_key_readonly
export HR_SECOND_KEY_FILE=$HR_TEST_DIR/api_key_second
export HR_UUID_KEY_FILE=$HR_TEST_DIR/api_key_uuid
export HR_OAUTH_KEY_FILE=$HR_TEST_DIR/api_key_oauth
export HR_NETRC_FILE=$HR_TEST_DIR/netrc
export HR_TEST_CA=$t/ca.crt
export HR_SERVER_CERT=$t/server.crt
export HR_SERVER_KEY=$t/server.key
export HR_WRONG_NAME_CERT=$t/wrong-name.crt
export HR_WRONG_NAME_KEY=$t/wrong-name.key
export HR_EXPIRED_CA=$t/expired-ca.crt
export HR_EXPIRED_CERT=$t/expired-server.crt
export HR_EXPIRED_KEY=$t/expired-server.key
export HR_TEST_CA_EXPIRED=$t/ca-expired.crt
# mutual TLS: the client CA the mtls cluster trusts, client certificates and keys (0600, postgres's)
export HR_MTLS_PORT=$HR_MTLS_PORT
export HR_MTLS_DATA=$HR_TEST_DIR/mtls
export HR_MTLS_SOCK=$HR_TEST_DIR/sock-mtls
export HR_PRIVATE_APP_ID=$PRIVATE_ID
export HR_CLIENT_CA=$t/client-ca.crt
export HR_CLIENT_CERT=$t/client.crt
export HR_CLIENT_KEY=$t/client.key
export HR_CLIENT_SHORT_CERT=$t/client-short.crt
export HR_CLIENT_SHORT_KEY=$t/client-short.key
export HR_CLIENT_ROGUE_CERT=$t/client-rogue.crt
export HR_CLIENT_ROGUE_KEY=$t/client-rogue.key
export HR_LOCAL_DATA=$HR_TEST_DIR/local
export HR_REMOTE_DATA=$HR_TEST_DIR/remote
export HR_REMOTE2_DATA=$HR_TEST_DIR/remote2
export HR_LOCAL_SOCK=$HR_TEST_DIR/sock
export HR_REMOTE_SOCK=$HR_TEST_DIR/sock-remote
export HR_REMOTE2_SOCK=$HR_TEST_DIR/sock-remote2
export HR_MYAPP_ID=$MYAPP_ID
export HR_QUIRKY_APP_ID=$QUIRKY_ID
export HR_OTHER_APP_ID=$OTHER_ID
# symbolic links owned by other users (see make_planted_links); empty unless started as root
export HR_PLANTED_LINKS=$planted
export PATH=$PGBIN:\$PATH
ENV
	chmod 0644 "$HR_TEST_DIR/env.sh"
}

cmd_start() {
	local p c token ro_token app_pw app2_pw quirky_pw uuid_token oauth_token mtls_pw
	cmd_stop
	for p in "$HR_MOCK_PORT" "$HR_MOCK_TLS_PORT" "$HR_LOCAL_PORT" "$HR_REMOTE_PORT" "$HR_REMOTE2_PORT" "$HR_MTLS_PORT"; do
		! port_open "$p" || die "port $p is already in use by another program"
	done
	fresh_dir
	cd "$HR_TEST_DIR"
	copy_repo
	make_tls

	# Fresh secrets every run; they exist only in 0600 files and in memory.
	umask 077
	token=HRKU-$(openssl rand -hex 24)
	ro_token=HRKU-$(openssl rand -hex 24)
	token2=HRKU-$(openssl rand -hex 24) # a second account, for isolation tests
	uuid_token=$("$PY" -c 'import uuid; print(uuid.uuid4())')
	oauth_token=$(openssl rand -base64 33 | tr '+/' '-_' | tr -d '=\n')
	app_pw=$(openssl rand -hex 16)
	app2_pw=$(openssl rand -hex 16)
	mtls_pw=$(openssl rand -hex 16)
	quirky_pw="p'a\\ss w@r:d/%#?\"é$(openssl rand -hex 8)"
	printf '%s\n' "$token" >"$HR_TEST_DIR/api_key"
	printf '%s\n' "$ro_token" >"$HR_TEST_DIR/api_key_readonly"
	printf '%s\n' "$token2" >"$HR_TEST_DIR/api_key_second"
	printf '%s\n' "$uuid_token" >"$HR_TEST_DIR/api_key_uuid"
	printf '%s\n' "$oauth_token" >"$HR_TEST_DIR/api_key_oauth"
	printf 'machine 127.0.0.1 login test@example.com password %s\n' "$token" >"$HR_TEST_DIR/netrc"
	write_mock_files "$token" "$ro_token" "$app_pw" "$app2_pw" "$quirky_pw" "$token2" "$uuid_token" "$oauth_token" "$mtls_pw"
	umask 022
	if [[ $(id -u) -eq 0 ]]; then chown -R postgres:postgres "$HR_TEST_DIR"; fi

	for c in "${CLUSTERS[@]}"; do init_cluster "$c"; done
	for c in "${CLUSTERS[@]}"; do start_cluster "$c"; done
	setup_remote remote 3 "$app_pw" "$quirky_pw"
	setup_remote remote2 5 "$app2_pw"
	setup_remote mtls 7 "$mtls_pw" "" mtls_user
	start_mock
	write_env_sh
	if [[ $(id -u) -eq 0 ]]; then chown -R postgres:postgres "$HR_TEST_DIR"; fi
	make_planted_links
	say "started in $HR_TEST_DIR: local :$HR_LOCAL_PORT, remote :$HR_REMOTE_PORT," \
		"remote2 :$HR_REMOTE2_PORT, mtls :$HR_MTLS_PORT, mock :$HR_MOCK_PORT (TLS :$HR_MOCK_TLS_PORT)"
	say "use it with: . $HR_TEST_DIR/env.sh"
}

check_setup
cd /
case ${1:-} in
start) cmd_start ;;
stop)
	cmd_stop
	say "stopped (files left in $HR_TEST_DIR)"
	;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
