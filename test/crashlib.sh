# Helpers of the crash, hostile-conditions and soak scripts (source after
# lib.sh): the server log, waiting for the cluster and its workers, and the
# queries that prove nothing was lost or doubled.

# The server log of the cluster on $PGPORT (pg_lsclusters knows it; with a
# logging collector, pg_current_logfile() does).
server_log() {
    local f
    f=$(psql -XAtqc "SELECT CASE WHEN pg_current_logfile() IS NULL THEN ''
                                 WHEN pg_current_logfile() LIKE '/%' THEN pg_current_logfile()
                                 ELSE current_setting('data_directory') || '/' || pg_current_logfile() END" 2>/dev/null)
    [[ -z $f ]] && f=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PGPORT" '$3 == p {print $7}')
    echo "$f"
}
T_LOG=$(server_log)
log_size() { if [[ -r $T_LOG ]]; then stat -c %s "$T_LOG"; else echo 0; fi; }
log_since() { [[ -r $T_LOG ]] && tail -c +$(($1 + 1)) "$T_LOG"; }    # log_since BYTE-OFFSET

# Until the cluster accepts connections again and is out of recovery.
wait_accepting() {
    for _ in $(seq 600); do
        [[ $(psql -XAtqc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null) == t ]] && return 0
        sleep 0.1
    done
    return 1
}

# pids of this database's workers; empty while none runs
sync_worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'workqueue sync worker' AND datname = current_database()"; }
fetch_worker_pid() { worker_pid; }

# Until both workers of this database run (SECONDS, default 20).
wait_workers() {
    for _ in $(seq $(( ${1:-20} * 10 ))); do
        [[ -n $(sync_worker_pid 2>/dev/null) && -n $(fetch_worker_pid 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    return 1
}

# The cluster's name for pg_ctlcluster ("15 regress"), from WQ_CLUSTER or pg_lsclusters.
cluster_args() {
    local c=${WQ_CLUSTER:-$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p {print $1 "/" $2}')}
    echo "${c/\// }"
}

# wait_fetches QUEUE [SECONDS]: until no fetch of the queue is queued or processing
wait_fetches() {
    for _ in $(seq $(( ${2:-60} * 10 ))); do
        [[ $(q "SELECT count(*) FROM workqueue.fetch WHERE queue = '$1' AND status IN ('queued', 'processing')" 2>/dev/null) == 0 ]] && return 0
        sleep 0.1
    done
    return 1
}

# Items of QUEUE whose number of "created" events is not exactly one.
bad_created() {
    q "SELECT count(*) FROM workqueue.item i WHERE i.queue = '$1'
         AND (SELECT count(*) FROM workqueue.item_event e
               WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind = 'created') <> 1"
}

# Completed fetches of QUEUE without exactly one fetch_completed event, plus
# fetch_completed events naming no completed fetch of the queue.
bad_fetch_events() {
    q "WITH ev AS (SELECT (payload->>'fetch')::bigint AS f, count(*) AS n FROM workqueue.item_event
                    WHERE queue = '$1' AND kind = 'fetch_completed' GROUP BY 1),
            done AS (SELECT id FROM workqueue.fetch WHERE queue = '$1' AND status = 'completed')
       SELECT (SELECT count(*) FROM done LEFT JOIN ev ON ev.f = done.id WHERE coalesce(ev.n, 0) <> 1)
            + (SELECT count(*) FROM ev LEFT JOIN done ON done.id = ev.f WHERE done.id IS NULL)"
}

# Changes whenever the postmaster restarts or reinitializes after a crash
# (pg_postmaster_start_time() alone survives a crash restart; the
# checkpointer does not).
cluster_epoch() {
    q "SELECT pg_postmaster_start_time() || ' ' || (SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'checkpointer')"
}
