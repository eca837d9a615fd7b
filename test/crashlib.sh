# Helpers of the crash, hostile-conditions and soak scripts (source after
# lib.sh): the server log, waiting for the cluster after a crash, and the
# queries that prove nothing was lost or doubled.  (The workers, waiting for
# them and for fetches: lib.sh.)

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
    wait_until 60 "the cluster to accept connections, out of recovery" quiet q_is "SELECT NOT pg_is_in_recovery()" t
}

# pid_gone PID: a query succeeds and PID is not in pg_stat_activity (a
# process killed with -9 stays listed until the crash restart has
# reinitialized shared memory; during the restart queries fail)
pid_gone() {
    local out
    out=$(q "SELECT pid FROM pg_stat_activity WHERE pid = $1" 2>/dev/null) && [[ -z $out ]]
}

# wait_crash_restart PID: until the crash restart that the kill -9 of PID
# set off is over (PID no longer listed)
wait_crash_restart() {
    wait_until 60 "the crash restart after kill -9 of pid $1" pid_gone "$1"
}

# The cluster's name for pg_ctlcluster ("15 regress"), from WQ_CLUSTER or pg_lsclusters.
cluster_args() {
    local c=${WQ_CLUSTER:-$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p {print $1 "/" $2}')}
    echo "${c/\// }"
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
