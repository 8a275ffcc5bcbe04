#!/usr/bin/env bash
# No secret in any log or test output: neither an API token nor any database
# password the run used (testenv.sh and rotate.sh record them, 0600, in
# secrets.history).  Runs after the regress and TAP suites, which leave their
# server logs (the extension's cluster logs at debug5, verbose), pg_regress
# results, TAP logs and the mock's log under $HR_TEST_DIR.
set -euo pipefail

: "${HR_TEST_DIR:?run through test/run-tests.sh}"
d=$HR_TEST_DIR
patterns=$(mktemp)
trap 'rm -f "$patterns"' EXIT
chmod 600 "$patterns"

# the tokens, and every password, also in its percent-encoded URL form
{
	head -n1 "$d/api_key"
	head -n1 "$d/api_key_readonly"
	head -n1 "$d/api_key_second"
	for f in api_key_uuid api_key_oauth; do [[ ! -f $d/$f ]] || head -n1 "$d/$f"; done
	cat "$d/secrets.history"
} | /usr/bin/python3 -c '
import sys
from urllib.parse import quote
for line in sys.stdin.read().split("\n"):
    if len(line) >= 8:
        print(line)
        print(quote(line, safe=""))
' | sort -u >"$patterns"

n=$(wc -l <"$patterns")
if ((n < 5)); then
	echo "secrets: only $n secrets known; is the environment complete?"
	exit 1
fi

# text outputs only: server and mock logs, pg_regress results and diffs, TAP
# logs, the runner's suite logs (data directories and the secret files
# themselves are not outputs)
mapfile -t files < <(find "$d" -type f \( -name '*.log' -o -name '*.out' -o -name '*.diffs' \
	-o -name 'regress_log_*' -o -name '*.diff' \) -not -path '*/pgdata/*' 2>/dev/null)
if ((${#files[@]} < 3)); then
	echo "secrets: only ${#files[@]} output files found under $d"
	exit 1
fi

leaks=$(grep -l -F -f "$patterns" "${files[@]}" 2>/dev/null || true)
if [[ -n $leaks ]]; then
	echo "secrets: a token or password appears in:"
	printf '  %s\n' $leaks
	exit 1
fi
# The local cluster logs at debug5: make sure it did log (an empty log proves nothing).
if ! grep -q 'DEBUG' "$d/local.log" 2>/dev/null; then
	echo "secrets: $d/local.log has no DEBUG lines; was log_min_messages = debug5 in force?"
	exit 1
fi
echo "secrets: $n secrets looked for in ${#files[@]} output files: none found"
