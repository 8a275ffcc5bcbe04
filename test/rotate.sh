#!/usr/bin/env bash
# Simulate a Heroku Postgres credential rotation for APP: a new random password on the remote
# cluster its DATABASE_URL points at, then the new URL in the mock (as Heroku sets the config
# var). With --failover the URL moves to the other remote (remote <-> remote2) with a fresh
# password there, as after a failover or a recovery onto new hardware; the role's password on
# the old cluster is changed too, so the old URL stops working as it would on the lost host.
#
#   bash test/rotate.sh APP [--failover] [-v]
#
# Every app of the mock that uses the same credential (same cluster and role) gets the new URL,
# as every app attached to a Heroku Postgres database does. Silent on success (tests call it
# from psql's \! and their expected output must not depend on ports); -v says what changed.
# Never prints a password. Works as root or as the postgres OS user.
set -euo pipefail

die() {
	echo "rotate: $*" >&2
	exit 1
}

HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}
[[ -r $HR_TEST_DIR/env.sh ]] || die "no test environment in $HR_TEST_DIR (run test/testenv.sh start)"
# shellcheck source=/dev/null
. "$HR_TEST_DIR/env.sh"

app='' failover=0 verbose=0
for arg in "$@"; do
	case $arg in
	--failover) failover=1 ;;
	-v) verbose=1 ;;
	-*) die "unknown option $arg" ;;
	*)
		[[ -z $app ]] || die "usage: rotate.sh APP [--failover] [-v]"
		app=$arg
		;;
	esac
done
[[ -n $app ]] || die "usage: rotate.sh APP [--failover] [-v]"
[[ $app =~ ^[a-z][a-z0-9-]{1,28}[a-z0-9]$ ]] || die "not an app name: $app"

PY=$HR_PYTHON
STATE=$HR_TEST_DIR/db-state.json
AS_PG=()
if [[ $(id -u) -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi

# One rotation at a time: the state file is read, changed and written back.
exec 9<"$STATE"
flock 9

# Where the app's URL points now (port and role; not secret).
info=$("$PY" - "$STATE" "$app" <<'PYEOF'
import json, sys
from urllib.parse import urlsplit
state = json.load(open(sys.argv[1], encoding="utf-8"))
if sys.argv[2] not in state:
    sys.exit("rotate: unknown app %s (known: %s)" % (sys.argv[2], ", ".join(sorted(state))))
u = urlsplit(state[sys.argv[2]]["url"])
print(u.port, u.username)
PYEOF
)
read -r port user <<<"$info"
[[ $user =~ ^[a-z_][a-z0-9_]*$ ]] || die "unexpected role name in $app's URL"

old_port=$port
if ((failover)); then
	if [[ $port == "$HR_REMOTE_PORT" ]]; then port=$HR_REMOTE2_PORT; else port=$HR_REMOTE_PORT; fi
fi

# The unix socket directory of the remote listening on port $1.
remote_sock() {
	case $1 in
	"$HR_REMOTE_PORT") echo "$HR_REMOTE_SOCK" ;;
	"$HR_REMOTE2_PORT") echo "$HR_REMOTE2_SOCK" ;;
	"${HR_MTLS_PORT:-}") echo "$HR_MTLS_SOCK" ;;
	*) die "$app's URL points at port $1, which is not a test remote" ;;
	esac
}

# A fresh password; quirky_user keeps the awkward characters its tests are about.
new_password() {
	if [[ $user == quirky_user ]]; then
		printf '%s' "p'a\\ss w@r:d/%#?\"é$(openssl rand -hex 8)"
	else
		openssl rand -hex 16
	fi
}

# set_password PORT PASSWORD: give $user that password on that remote, creating the role there
# if needed (after a failover it may not exist yet). The SQL goes on stdin, never a command
# line, with statement logging off, so the password reaches neither ps nor the server log.
set_password() {
	local sock pwlit=${2//\'/\'\'}
	sock=$(remote_sock "$1")
	printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$user') AS missing \\gset" \
		'\if :missing' \
		"CREATE ROLE \"$user\" LOGIN;" \
		"GRANT CONNECT ON DATABASE appdb TO \"$user\";" \
		"GRANT SELECT ON orders TO \"$user\";" \
		'\endif' \
		"ALTER ROLE \"$user\" PASSWORD '$pwlit';" |
		"${AS_PG[@]}" env PGCLIENTENCODING=UTF8 "$HR_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
			-v VERBOSITY=terse -h "$sock" -p "$1" -U postgres -d appdb >/dev/null ||
		die "could not set the new password of $user on port $1"
}

newpw=$(new_password)
# Every password ever used, for test/checks/secrets.sh to look for in logs and outputs.
printf '%s\n' "$newpw" >>"$HR_TEST_DIR/secrets.history"
oldpw=''
if [[ $old_port != "$port" ]]; then
	oldpw=$(new_password)
	printf '%s\n' "$oldpw" >>"$HR_TEST_DIR/secrets.history"
	set_password "$old_port" "$oldpw"
fi
# The new password is set by the Python step below, right before the mock is
# told: the window in which the remote and the config var disagree is a few
# milliseconds (the real Heroku has such a window too; a soak test shows it).

# New URLs into the state file and, through mockctl, into the mock: APP and every app on the
# target credential get the new one; after a failover the apps left on the old credential get
# its new password.
HR_NEWPW=$newpw HR_OLDPW=$oldpw HR_AS_PG="${AS_PG[*]}" HR_NEW_SOCK=$(remote_sock "$port") \
	"$PY" - "$STATE" "$app" "$user" "$port" "$old_port" \
	"$HR_MOCKCTL" "$HEROKU_MOCK_URL" "$verbose" <<'PYEOF'
import json, os, re, subprocess, sys
from urllib.parse import quote, urlsplit

path, app, user, port, old_port, mockctl, mock_url, verbose = sys.argv[1:]
sys.path.insert(0, os.path.dirname(mockctl))
import mockctl as ctl  # noqa: E402  (in-process: no interpreter start between the two steps)


def url(pw, p):
    return "postgres://%s:%s@127.0.0.1:%s/appdb" % (user, quote(pw, safe=""), p)


def cred(u):
    s = urlsplit(u)
    return (str(s.port), s.username)


with open(path, encoding="utf-8") as f:
    state = json.load(f)
changes = {}
if old_port != port:
    for a in state:
        if a != app and cred(state[a]["url"]) == (old_port, user):
            changes[a] = url(os.environ["HR_OLDPW"], old_port)
new = url(os.environ["HR_NEWPW"], port)
for a in state:
    if a == app or cred(state[a]["url"]) == (port, user):
        changes[a] = new
for a, u in changes.items():
    state[a]["url"] = u
# Rewrite in place: the file keeps its owner (postgres) and mode (0600) whoever runs this.
with open(path, "w", encoding="utf-8") as f:
    json.dump(state, f, indent=2, ensure_ascii=False)
    f.write("\n")

# The new password on the remote (SQL on stdin, statement logging off), then
# at once every changed config var in the mock, one PATCH per app.
pw = os.environ["HR_NEWPW"].replace("'", "''")
sql = ("SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\n"
       "SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') AS missing \\gset\n"
       "\\if :missing\nCREATE ROLE \"%s\" LOGIN;\nGRANT CONNECT ON DATABASE appdb TO \"%s\";\n"
       "GRANT SELECT ON orders TO \"%s\";\n\\endif\nALTER ROLE \"%s\" PASSWORD '%s';\n"
       % (user, user, user, user, user, pw))
as_pg = os.environ["HR_AS_PG"].split()
# The ALTER ROLE waits, uncommitted, in an open transaction while the mock
# is told; the COMMIT follows at once: the remote and the config var
# disagree only for the time of one COMMIT.
p = subprocess.Popen(as_pg + ["env", "PGCLIENTENCODING=UTF8", os.path.join(os.environ["HR_PGBIN"], "psql"),
                      "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=terse",
                      "-h", os.environ["HR_NEW_SOCK"], "-p", port, "-U", "postgres", "-d", "appdb"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
p.stdin.write(sql.replace("ALTER ROLE", "BEGIN;\nALTER ROLE", 1) + "\\echo altered\n")
p.stdin.flush()
if p.stdout.readline().strip() != "altered":
    p.kill()
    print("rotate: could not set the new password of %s on port %s" % (user, port), file=sys.stderr)
    sys.exit(1)
failed = False
for a in sorted(changes):
    u = changes[a]
    try:
        ctl.set_vars(mock_url, a, {var: u for var in state[a]["vars"]})
    except Exception as e:  # the message may quote the URL: mask its password
        msg = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1****@", str(e).replace(u, "<url>"))
        print("rotate: setting %s in the mock failed: %s" % (a, msg), file=sys.stderr)
        failed = True
        continue
    if verbose == "1":
        for var in state[a]["vars"]:
            print("rotate: %s %s -> %s@127.0.0.1:%s (new password)" % (a, var, user, cred(u)[0]))
p.stdin.write("COMMIT;\n")
p.stdin.close()
if p.wait() != 0:
    print("rotate: could not commit the new password of %s on port %s" % (user, port), file=sys.stderr)
    failed = True
sys.exit(1 if failed else 0)
PYEOF
