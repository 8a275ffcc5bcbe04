#!/usr/bin/env bash
# Install the Debian packages the build and the tests need, and only those that are missing:
# CI and fresh developer machines start without them, and apt-get is slow when run for nothing.
set -euo pipefail

# The one list of packages. Add new build or test dependencies here.
PACKAGES=(
	postgresql-15
	postgresql-contrib
	postgresql-server-dev-15
	libcurl4-openssl-dev
	libjson-c-dev
	libssl-dev
	libpq-dev
	# heroku-pg-resolve watch's webhook receiver (the command only, not the library)
	libmicrohttpd-dev
	libipc-run-perl
	openssl
	make
	gcc
	pkg-config
	python3
	# packaging checks (test/checks/meta.sh, pgxn.sh, deb.sh)
	python3-jsonschema
	pgxnclient
	git
	zip
	unzip
	dpkg-dev
	debhelper
	postgresql-server-dev-all
	lintian
	autopkgtest
	# systemd-analyze, for the watcher's unit (test/checks/unit.sh)
	systemd
	# memory checks (test/checks/valgrind.sh, valgrind_watch.sh)
	valgrind
	# fuzz and sanitizer checks (test/checks/fuzz.sh, asan.sh)
	clang
	libclang-rt-14-dev
	# the real Prometheus text parser for the watcher's --metrics-listen (test/t/064)
	python3-prometheus-client
	# the watcher's --pgbouncer sink is tested against the real one (test/t/059, bench/sinks.sh)
	pgbouncer
)

# The packaged PgBouncer service is not wanted: the tests run their own instance on a private
# port.  Stop it wherever an install (now or earlier) started it; systemctl may not exist.
stop_packaged_pgbouncer() {
	if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
		systemctl disable --now pgbouncer.service >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1 && [[ -x /etc/init.d/pgbouncer ]]; then
		service pgbouncer stop >/dev/null 2>&1 || true
	fi
	local pidf=/var/run/postgresql/pgbouncer.pid
	if [[ -s $pidf ]] && kill -0 "$(cat "$pidf")" 2>/dev/null &&
		grep -q pgbouncer "/proc/$(cat "$pidf")/comm" 2>/dev/null; then
		kill "$(cat "$pidf")" 2>/dev/null || true
	fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != installed ]]; then
		missing+=("$pkg")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	[[ $(id -u) -ne 0 ]] || stop_packaged_pgbouncer
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing packages (${missing[*]}) and not root: install them and retry" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
# No stdin in CI: never let apt or debconf ask a question.
export DEBIAN_FRONTEND=noninteractive
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" </dev/null
[[ " ${missing[*]} " != *" pgbouncer "* ]] || stop_packaged_pgbouncer
