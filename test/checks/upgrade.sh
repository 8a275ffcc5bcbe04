#!/usr/bin/env bash
# Upgrade path: ALTER EXTENSION heroku_resolver UPDATE from every released
# version must reach the catalog state of a fresh install.  Compares
# pg_dump --schema-only and the extension's member objects of two databases
# on the test environment's local cluster.
set -euo pipefail

: "${PGHOST:?run through test/run-tests.sh}"
PGBIN=${HR_PGBIN:-/usr/lib/postgresql/15/bin}
AS_PG=()
if [[ $(id -u) -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

psql_() { "${AS_PG[@]}" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres "$@"; }

target=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
# every version a full install script exists for is a released starting point
mapfile -t starts < <(ls heroku_resolver--*.sql | grep -v -- '--.*--' | sed 's/heroku_resolver--\(.*\)\.sql/\1/')

# the extension's member objects with their definitions, privileges and
# comments (pg_dump leaves member objects out: it writes CREATE EXTENSION)
members() {
	psql_ -d "$1" -Atc "
	WITH m AS (
		SELECT classid, objid, objsubid FROM pg_depend
		WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'heroku_resolver'))
	SELECT pg_describe_object(m.classid, m.objid, m.objsubid) || E'\\n' ||
		coalesce(CASE m.classid
			WHEN 'pg_proc'::regclass THEN
				(SELECT pg_get_functiondef(p.oid) || ' ACL ' || coalesce(p.proacl::text, '-')
				   FROM pg_proc p WHERE p.oid = m.objid)
			WHEN 'pg_class'::regclass THEN
				(SELECT c.relkind::text || ' ACL ' || coalesce(c.relacl::text, '-') || ' ' ||
				        coalesce(pg_get_viewdef(c.oid), '') || ' ' ||
				        (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
				                           CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
				                           coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
				                           ', ' ORDER BY a.attnum)
				           FROM pg_attribute a LEFT JOIN pg_attrdef d
				             ON d.adrelid = a.attrelid AND d.adnum = a.attnum
				          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) ||
				        coalesce((SELECT ' ' || string_agg(pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
				                    FROM pg_constraint k WHERE k.conrelid = c.oid), '') ||
				        coalesce((SELECT ' ' || string_agg(pg_get_indexdef(i.indexrelid), ', ' ORDER BY 1)
				                    FROM pg_index i WHERE i.indrelid = c.oid), '')
				   FROM pg_class c WHERE c.oid = m.objid)
			ELSE '' END, '') || ' COMMENT ' ||
		coalesce(obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)), '-')
	FROM m ORDER BY 1"
	# what pg_extension_config_dump registered
	psql_ -d "$1" -Atc "SELECT extconfig::regclass[]::text, extcondition FROM pg_extension WHERE extname = 'heroku_resolver'"
}
dump() {
	"${AS_PG[@]}" "$PGBIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres --schema-only "$1" |
		grep -v '^-- Dumped\|^-- Started\|^-- Completed\|^\\restrict\|^\\unrestrict'
}

fail=0
psql_ -d postgres -c 'DROP DATABASE IF EXISTS hr_fresh' -c 'CREATE DATABASE hr_fresh'
psql_ -d hr_fresh -c 'CREATE EXTENSION dblink' -c 'CREATE EXTENSION postgres_fdw' -c 'CREATE EXTENSION heroku_resolver'
dump hr_fresh >"$work/fresh.sql"
members hr_fresh >"$work/fresh.members"
for v in "${starts[@]}"; do
	[[ $v == "$target" ]] && continue
	psql_ -d postgres -c 'DROP DATABASE IF EXISTS hr_upgraded' -c 'CREATE DATABASE hr_upgraded'
	psql_ -d hr_upgraded -c 'CREATE EXTENSION dblink' -c 'CREATE EXTENSION postgres_fdw' \
		-c "CREATE EXTENSION heroku_resolver VERSION '$v'" -c 'ALTER EXTENSION heroku_resolver UPDATE'
	got=$(psql_ -d hr_upgraded -Atc "SELECT extversion FROM pg_extension WHERE extname = 'heroku_resolver'")
	if [[ $got != "$target" ]]; then
		echo "upgrade: from $v reached $got, not $target"
		fail=1
		continue
	fi
	dump hr_upgraded >"$work/upgraded.sql"
	members hr_upgraded >"$work/upgraded.members"
	if ! diff -u "$work/fresh.sql" "$work/upgraded.sql"; then
		echo "upgrade: pg_dump --schema-only differs after $v -> $target"
		fail=1
	fi
	if ! diff -u "$work/fresh.members" "$work/upgraded.members"; then
		echo "upgrade: member objects differ after $v -> $target"
		fail=1
	fi
	((fail)) || echo "upgrade: $v -> $target: $(grep -c '' "$work/upgraded.members") lines of member definitions and the schema dump identical to a fresh install"
done
psql_ -d postgres -c 'DROP DATABASE IF EXISTS hr_fresh' -c 'DROP DATABASE IF EXISTS hr_upgraded'
((${#starts[@]} > 0)) || { echo "upgrade: no install script found"; exit 1; }
exit $fail
