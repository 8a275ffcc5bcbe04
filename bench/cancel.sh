#!/usr/bin/env bash
# Cancellation latency: how long a backend stuck in a Heroku API request
# (the mock never answers) takes to raise its error after pg_cancel_backend()
# and after statement_timeout fires.  Both ends are read on the server
# (clock_timestamp() at the cancel, the log line's %m timestamp at the
# error), so no client start-up is counted.  Target: under 100 ms.  Not a
# test: nothing is asserted.
#
#   bash test/testenv.sh start && make install && bash bench/cancel.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${CANCEL_ROUNDS:-20}
bench_init cancel "${CANCEL_PORT:-31397}"
bench_at_exit '"$PY" "$HR_MOCKCTL" clear-faults >/dev/null 2>&1'
bench_cluster <<CONF
log_line_prefix = '%m [%p] '
lc_messages = 'C'
heroku.cache_ttl = 0
heroku.timeout = '60s'
CONF
psql_ -c 'CREATE EXTENSION heroku_resolver'
"$PY" "$HR_MOCKCTL" fault hang

# log time of the first ERROR line of backend $1, as epoch seconds
err_time() {
	local line
	for _ in $(seq 1 100); do
		line=$(grep -a "\[$1\] ERROR:  canceling statement" "$WORK/server.log" | head -n1 || true)
		[[ -n $line ]] && break
		sleep 0.05
	done
	[[ -n $line ]] || return 1
	psql_ -c "SELECT extract(epoch FROM '${line:0:27}'::timestamptz)"
}

cancel_ms=()
timeout_ms=()
for _ in $(seq 1 "$N"); do
	# pg_cancel_backend(): a backend waiting on the hung request
	psql_ -c "SELECT heroku_dblink_url('myapp')" >/dev/null 2>&1 &
	client=$!
	pid=''
	for _ in $(seq 1 200); do
		pid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT heroku_dblink_url%' AND state = 'active'")
		[[ -n $pid ]] && break
		sleep 0.02
	done
	sleep 0.2 # well inside the request
	t0=$(psql_ -c "SELECT extract(epoch FROM clock_timestamp()) FROM pg_cancel_backend($pid)")
	wait "$client" || true
	t1=$(err_time "$pid")
	cancel_ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {v = (b - a) * 1000; printf "%.1f", (v < 0 ? 0 : v)}')")

	# statement_timeout = 200ms: from when it fires to the error
	psql_ -c "SET statement_timeout = '200ms'" -c "DO \$\$ BEGIN
		RAISE LOG 'hr-start % %', pg_backend_pid(), extract(epoch FROM statement_timestamp());
		PERFORM heroku_dblink_url('myapp'); END \$\$" >/dev/null 2>&1 || true
	read -r tpid tstart < <(grep -a 'LOG:  hr-start' "$WORK/server.log" | tail -n1 | sed 's/.*hr-start //')
	t1=$(err_time "$tpid")
	timeout_ms+=("$(awk -v a="$tstart" -v b="$t1" 'BEGIN {v = (b - a) * 1000 - 200; printf "%.1f", (v < 0 ? 0 : v)}')")
done

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {printf "median %.1f ms, max %.1f ms (n=%d)", a[int((NR + 1) / 2)], a[NR], NR}'; }
printf '\ncancellation latency, mock never answers (%s rounds)\n\n' "$N"
printf '%-46s %s\n' 'pg_cancel_backend() -> ERROR' "$(stats "${cancel_ms[@]}")"
printf '%-46s %s\n' 'statement_timeout fires -> ERROR' "$(stats "${timeout_ms[@]}")"
printf '\n(log timestamps have 1 ms resolution; target: under 100 ms)\n'
