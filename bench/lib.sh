# Shared set-up of the benchmarks: source it after setting $db (the
# benchmark's own database) and $name (its results file name).  Gives a
# temporary directory $tmp, a cleanup trap that drops $db, q (one value of a
# query in $db), log (print and keep for the results file), ms (run SQL in
# $db and print its duration in milliseconds, by psql's \timing) and
# save_results.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench-$name.XXXXXX")
chmod 755 "$tmp"
mkdir -p results

cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

q() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

log() {
    echo "$*" | tee -a "$tmp/log"
}

ms() {      # ms SQL...: the duration of the last statement, in ms
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c '\timing on' "${@/#/-c}" |
        sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -1
}

save_results() {
    cp "$tmp/log" "results/$name.txt"
}
