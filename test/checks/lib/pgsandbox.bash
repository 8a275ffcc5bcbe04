# shellcheck shell=bash
# Sourced by the packaging checks: a private copy of the PostgreSQL installation to install a
# build into (so a check never overwrites the extension other runs on this machine use) and a
# throwaway cluster of it.  Set PG_CONFIG and WORK (a directory the caller deletes) first.
#
#   sandbox_make ROOT        copy the installation under ROOT: binaries copied (PostgreSQL finds
#                            its share and lib directories relative to the real path of its
#                            executable), the rest symlinked; the extension's files removed
#   sandbox_start BINDIR PORT   initdb and start a cluster as postgres in $WORK/run
#   sandbox_psql SQL...      run statements there (-c each), print the tuples
#   sandbox_stop             stop it (also call from the caller's EXIT trap)

sandbox_make() {
	local root=$1 bindir sharedir pkglibdir
	bindir=$("$PG_CONFIG" --bindir)
	sharedir=$("$PG_CONFIG" --sharedir)
	pkglibdir=$("$PG_CONFIG" --pkglibdir)
	mkdir -p "$root$(dirname "$bindir")" "$root$sharedir" "$root$pkglibdir"
	cp -a "$bindir" "$root$bindir"
	cp -rs "$sharedir/." "$root$sharedir/"
	[[ $pkglibdir == "$bindir"/* ]] || cp -rs "$pkglibdir/." "$root$pkglibdir/"
	rm -rf "$root$sharedir/extension/heroku_resolver"* "$root$pkglibdir/heroku_resolver.so" \
		"$root$pkglibdir/bitcode/heroku_resolver"*
}

SANDBOX_BIN=
SANDBOX_PORT=
SANDBOX_RUN=
sandbox_start() {
	SANDBOX_BIN=$1
	SANDBOX_PORT=$2
	SANDBOX_RUN=$WORK/run
	install -d -o postgres -m 700 "$SANDBOX_RUN"
	runuser -u postgres -- "$SANDBOX_BIN/initdb" -D "$SANDBOX_RUN/pgdata" -A trust -U postgres \
		--no-sync >"$SANDBOX_RUN/initdb.log" 2>&1 || {
		tail -n 5 "$SANDBOX_RUN/initdb.log"
		return 1
	}
	runuser -u postgres -- "$SANDBOX_BIN/pg_ctl" -D "$SANDBOX_RUN/pgdata" -w -l "$SANDBOX_RUN/server.log" \
		-o "-p $SANDBOX_PORT -k $SANDBOX_RUN -c listen_addresses=''" start >/dev/null || {
		tail -n 5 "$SANDBOX_RUN/server.log"
		return 1
	}
}

sandbox_psql() {
	local args=() s
	for s in "$@"; do args+=(-c "$s"); done
	runuser -u postgres -- "$SANDBOX_BIN/psql" -XAtq -h "$SANDBOX_RUN" -p "$SANDBOX_PORT" \
		-d postgres -v ON_ERROR_STOP=1 "${args[@]}" 2>&1
}

sandbox_stop() {
	if [[ -n $SANDBOX_RUN && -f $SANDBOX_RUN/pgdata/postmaster.pid ]]; then
		runuser -u postgres -- "$SANDBOX_BIN/pg_ctl" -D "$SANDBOX_RUN/pgdata" -m immediate stop \
			>/dev/null 2>&1 || true
	fi
}
