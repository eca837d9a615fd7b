#!/usr/bin/env bash
# The examples in doc/*.md run: every ```sql block of a page, in order, in a
# fresh database, must execute without error (in one transaction, rolled
# back).  A page marked
# "<!-- docs.sh: run in the worker's database -->" runs in PGDATABASE (which
# the background worker serves) against the sample API at WQ_API instead.
set -uo pipefail
cd "$(dirname "$0")/../.."
n=0; failed=0
for page in doc/*.md; do
    db=wq_doc_$(basename "$page" .md)
    worker_db=false
    if grep -q "<!-- docs.sh: run in the worker's database -->" "$page"; then
        worker_db=true
        db=${PGDATABASE:-postgres}
    else
        dropdb --if-exists "$db" >/dev/null 2>&1
        createdb "$db"
    fi
    sql=$(awk '/^```sql$/{on=1; next} /^```$/{on=0} on' "$page" | sed "s|http://127.0.0.1:8080|${WQ_API:-http://127.0.0.1:8080}|g")
    n=$((n + 1))
    [[ -z $sql ]] && { echo "ok $n - $page has no SQL examples # skip"; $worker_db || dropdb "$db"; continue; }
    # pages run in their own database inside one transaction that is rolled
    # back, so that roles they create do not outlive them; the worker's
    # pages commit (the worker must see what they queue)
    if $worker_db; then begin=''; end=''; else begin='BEGIN;'; end='ROLLBACK;'; fi
    if out=$(printf 'SET client_min_messages = warning;\nCREATE EXTENSION IF NOT EXISTS workqueue;\n%s\n%s\n%s\n' \
                    "$begin" "$sql" "$end" |
             psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1 >/dev/null); then
        echo "ok $n - examples in $page run"
    else
        echo "not ok $n - examples in $page run"; echo "$out" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
    $worker_db || dropdb "$db"
done
echo "$((n - failed)) passed, $failed failed"
[[ $failed == 0 ]]
