#!/usr/bin/env bash
# The examples in doc/*.md run: every ```sql block of a page, in order, in a
# fresh database, must execute without error.
set -uo pipefail
cd "$(dirname "$0")/../.."
n=0; failed=0
for page in doc/*.md; do
    db=wq_doc_$(basename "$page" .md)
    dropdb --if-exists "$db" >/dev/null 2>&1
    createdb "$db"
    sql=$(awk '/^```sql$/{on=1; next} /^```$/{on=0} on' "$page")
    n=$((n + 1))
    [[ -z $sql ]] && { echo "ok $n - $page has no SQL examples # skip"; dropdb "$db"; continue; }
    if out=$(printf 'CREATE EXTENSION workqueue;\n%s\n' "$sql" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1 >/dev/null); then
        echo "ok $n - examples in $page run"
    else
        echo "not ok $n - examples in $page run"; echo "$out" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
    dropdb "$db"
done
echo "$((n - failed)) passed, $failed failed"
[[ $failed == 0 ]]
