#!/usr/bin/env bash
# test/citus/routing.sh — calls that name an item by id alone route their
# statements to the item's shard once the backend knows its queue (issue 15:
# every statement on a per-item table carries queue = const).  A call
# whose item the backend has not met reads its queue from every shard once
# and remembers it (src/core/scale.c, workqueue._known_queue); after that,
# release, extend_lease, comment, update_fields, enqueue_fetch
# (_item_for_update), history, sla_status and allowed_transitions touch
# the queue's shards only.  Counted from citus.log_remote_commands in one
# psql session (client_min_messages = log): the commands sent to the
# workers, and the shards they name.  Error paths: an unknown id, an item
# out of the caller's scopes (not locked: a lock someone else holds makes
# it wait no more than a missing item), a null id, a known item deleted
# since.
# (Runs after basic.sh, on the cluster it distributed; distributes if not.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh

citus_distribute
shards=$(q "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'workqueue.item'::regclass")

q "SELECT workqueue.drop_queue(name, true) FROM workqueue.queue WHERE name IN ('rt1', 'rt2')" >/dev/null   # (again)
q "SELECT workqueue.create_queue('rt1'); SELECT workqueue.create_queue('rt2')" >/dev/null
q "SELECT workqueue.create_source('rt1s', 'rt1', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/details?ids={ids}')" >/dev/null
read -r i1 i2 i3 i4 i5 <<<"$(q "SELECT string_agg(workqueue.add('rt1', '{}', 2, 'RT-' || g)::text, ' ' ORDER BY g)
                                FROM generate_series(1, 5) g")"
read -r j1 j2 <<<"$(q "SELECT string_agg(workqueue.add('rt2', '{}')::text, ' ') FROM generate_series(1, 2)")"
# the shards of queue rt1's co-located tables
own=" $(q "SELECT string_agg(t || '_' || get_shard_id_for_distribution_column('workqueue.' || t, 'rt1'), ' ')
             FROM unnest(ARRAY['item', 'item_event', 'fetch', 'lease_fence']) t") "

# session SQL: runs SQL (psql script) in one session; what follows a line
# "\echo ==" is traced: its remote commands are logged
session() {
    psql -X -At -v VERBOSITY=terse "$@" 2>&1 <<<"$(sed 's/^\\echo ==\(.*\)$/SET citus.log_remote_commands = on;\nSET client_min_messages = log;\n\\echo ==\1/' <<<"$SQL_TEXT")"
}
# part OUT NAME: the output of OUT after "==NAME" up to the next "=="
part() { awk -v n="==$2" '$0 == n {on = 1; next} /^==/ {on = 0} on' <<<"$1"; }
# commands OUT NAME: how many commands the part sent to worker nodes
commands() { part "$1" "$2" | grep -c 'issuing '; }
# foreign OUT NAME: the shards of per-item tables it names that are not rt1's
foreign() {
    local s out=""
    for s in $(part "$1" "$2" | grep -oE 'workqueue\.(item|item_event|fetch|lease_fence)_[0-9]+' | sort -u); do
        [[ $own == *" ${s#workqueue.} "* ]] || out+="${out:+ }${s#workqueue.}"
    done
    echo "$out"
}
# item_shards OUT NAME: how many shards of item the part names
item_shards() { part "$1" "$2" | grep -oE 'workqueue\.item_[0-9]+' | sort -u | wc -l; }
error_of() { part "$1" "$2" | grep -o 'ERROR: .*' | head -1 | sed 's/^ERROR:  //'; }

# claim -> comment -> extend_lease -> update_fields -> release, and the reads
SQL_TEXT="SELECT id FROM workqueue.claim('rt1', 1, 'w') \gset
SELECT id AS other FROM workqueue.claim('rt2', 1, 'w') \gset
\echo ==comment
SELECT 'ok ' || workqueue.comment(:id, 'hi', 'w');
\echo ==extend_lease
SELECT 'ok ' || (workqueue.extend_lease(:id, '1 minute', 'w')).id;
\echo ==update_fields
SELECT 'ok ' || (workqueue.update_fields(:id, '{\"a\": 1}', 'w')).id;
\echo ==history
SELECT 'ok ' || count(*) FROM workqueue.history(:id);
\echo ==sla_status
SELECT 'ok ' || count(*) FROM workqueue.sla_status(:id);
\echo ==allowed_transitions
SELECT 'ok ' || count(*) FROM workqueue.allowed_transitions(:id, 'w');
\echo ==enqueue_fetch
SELECT 'ok ' || (workqueue.enqueue_fetch(:id, 'rt1s') > 0);
\echo ==release
SELECT 'ok ' || (workqueue.release(:id, 'w')).status;
\echo ==comment_other_queue
SELECT 'ok ' || workqueue.comment(:other, 'hi', 'w');"
out=$(session)
expect="comment:5 extend_lease:5 update_fields:5 history:2 sla_status:1 allowed_transitions:1 enqueue_fetch:5 release:5"
for e in $expect; do
    call=${e%%:*} n=${e#*:}
    is "$(part "$out" "$call" | grep -c '^ok ')" 1 "$call() of an item the session claimed works"
    is "$(foreign "$out" "$call") $(item_shards "$out" "$call")" " 1" "... and names only its queue's shards (1 of item)"
    c=$(commands "$out" "$call")
    ok $(( c <= n ? 0 : 1 )) "... $c commands to the workers (at most $n; before: $shards more, the read of every shard)"
done
is "$(commands "$out" comment_other_queue) $(item_shards "$out" comment_other_queue)" "5 1" \
   "comment() of an item claimed in another queue: routed too"
is "$(part "$out" comment_other_queue | grep -c '^ok ')" 1 "... and works"

# an item the session has not met: one read of every shard, then routed
SQL_TEXT="\echo ==first
SELECT 'ok ' || workqueue.comment($i2, 'a');
\echo ==second
SELECT 'ok ' || workqueue.comment($i2, 'b');
\echo ==history_first
SELECT 'ok ' || count(*) FROM workqueue.history($i3);
\echo ==comment_after_history
SELECT 'ok ' || workqueue.comment($i3, 'c');
\echo ==allowed_first
SELECT 'ok ' || count(*) FROM workqueue.allowed_transitions($i4);
\echo ==history_after_allowed
SELECT 'ok ' || count(*) FROM workqueue.history($i4);
\echo ==history_other
SELECT 'ok ' || count(*) FROM workqueue.history($j2);"
out=$(session)
c=$(commands "$out" first)
is "$(part "$out" first | grep -c '^ok ') $(item_shards "$out" first)" "1 $shards" \
   "comment() of an item the session has not met: reads its queue from every shard ($c commands)"
is "$(part "$out" second | grep -c '^ok ') $(item_shards "$out" second) $(foreign "$out" second)" "1 1 " \
   "... and the next call on it goes to its queue's shard only"
is "$(item_shards "$out" history_first) $(item_shards "$out" comment_after_history)" "$shards 1" \
   "history() remembers the queue it read: comment() after it is routed"
is "$(item_shards "$out" allowed_first) $(item_shards "$out" history_after_allowed)" "$shards 1" \
   "allowed_transitions() remembers it too: history() after it is routed"
is "$(part "$out" history_other | grep -c '^ok ') $(item_shards "$out" history_other)" "1 $shards" \
   "history() of another item the session has not met: read from every shard"

# get_items: the ids whose queues the session knows from those queues'
# shards, the others from every shard (and remembered)
SQL_TEXT="\echo ==get_unknown
SELECT 'ok ' || string_agg(g.id::text, ',' ORDER BY g.ordinality) FROM workqueue.get_items(ARRAY[$j1, $i1, 999999999]) WITH ORDINALITY g;
\echo ==get_one_queue
SELECT 'ok ' || string_agg(g.id::text, ',' ORDER BY g.ordinality) FROM workqueue.get_items(ARRAY[$i1]) WITH ORDINALITY g;
\echo ==get_known
SELECT 'ok ' || string_agg(g.id::text, ',' ORDER BY g.ordinality) FROM workqueue.get_items(ARRAY[$j1, $i1]) WITH ORDINALITY g;
\echo ==comment_after_get
SELECT 'ok ' || workqueue.comment($j1, 'got');"
out=$(session)
is "$(part "$out" get_unknown | grep '^ok ') $(item_shards "$out" get_unknown)" "ok $j1,$i1 $shards" \
   "get_items() of ids the session has not met: read from every shard, in the order given"
is "$(part "$out" get_one_queue | grep '^ok ') $(item_shards "$out" get_one_queue) $(foreign "$out" get_one_queue)" "ok $i1 1 " \
   "... then an id it met: from its queue's shard only"
is "$(part "$out" get_known | grep '^ok ') $(item_shards "$out" get_known)" "ok $j1,$i1 2" \
   "... ids of two queues it met: from their two shards"
is "$(item_shards "$out" comment_after_get)" 1 "... and comment() after get_items() is routed"

# many calls in one session (PL/pgSQL may switch to a generic plan after
# five): still routed, still right
SQL_TEXT="SELECT workqueue.comment($i2, 'first');
\echo ==known
$(for _ in $(seq 8); do echo "SELECT 'ok ' || workqueue.comment($i2, 'x');"; done)
\echo ==unknown
$(for id in $i1 $i3 $i4 $i5 $j1 $j2 $i2; do echo "SELECT 'ok ' || count(*) FROM workqueue.history($id);"; done)"
out=$(session)
is "$(part "$out" known | grep -c '^ok ') $(item_shards "$out" known) $(commands "$out" known)" "8 1 40" \
   "8 comment() calls in one session: each routed (5 commands each)"
is "$(part "$out" unknown | grep -c '^ok ') $(part "$out" unknown | grep -c 'ERROR')" "7 0" \
   "7 history() calls of items not met in one session: every one answered"

# error paths
q "CREATE ROLE wq_citus_rt LOGIN IN ROLE workqueue_agent" >/dev/null 2>&1
q "SELECT workqueue.grant_scope('wq_citus_rt', 'emea')" >/dev/null
q "UPDATE workqueue.item SET scope = '{apac}' WHERE queue = 'rt1' AND id = $i5" >/dev/null
SQL_TEXT="\echo ==unknown
SELECT workqueue.comment(999999999, 'x');
\echo ==unknown_again
SELECT workqueue.release(999999999);
\echo ==null
SELECT workqueue.comment(NULL, 'x');
\echo ==null_history
SELECT count(*) FROM workqueue.history(NULL);
\echo ==null_sla
SELECT count(*) FROM workqueue.sla_status(NULL);
\echo ==unknown_history
SELECT count(*) FROM workqueue.history(999999999);"
out=$(session)
is "$(error_of "$out" unknown)" "item 999999999 does not exist" "comment() of an unknown id: does not exist"
is "$(item_shards "$out" unknown) $(commands "$out" unknown)" "$shards $shards" \
   "... after one read of every shard (an id names no queue), nothing locked"
is "$(error_of "$out" unknown_again) $(item_shards "$out" unknown_again)" "item 999999999 does not exist $shards" \
   "... a missing id is not remembered: release() of it reads every shard again"
is "$(error_of "$out" null) $(commands "$out" null)" "item id must not be null 0" \
   "comment() of a null id: refused before any remote command"
is "$(error_of "$out" null_history) $(commands "$out" null_history)" "item NULL does not exist 0" \
   "history() of a null id: does not exist, no remote command"
is "$(error_of "$out" null_sla) $(commands "$out" null_sla)" "item NULL does not exist 0" \
   "sla_status() of a null id: does not exist, no remote command"
is "$(error_of "$out" unknown_history) $(item_shards "$out" unknown_history)" "item 999999999 does not exist $shards" \
   "history() of an unknown id: does not exist"

# a hidden item (scope apac, the role has emea) held locked by another
# session: "does not exist", at once (not locked, no wait), first from
# every shard, then routed; an item of the role's scope held locked makes
# the call wait (lock_timeout does not reach the wait on the worker node:
# timed here)
hold() {    # hold ID SECONDS: another session holds item ID of rt1 locked
    psql -XAtq -c "BEGIN" -c "SELECT 1 FROM workqueue.item WHERE queue = 'rt1' AND id = $1 FOR UPDATE" \
         -c "SELECT pg_sleep($2) /* rt-hold */" -c "COMMIT" >/dev/null 2>&1 &
    wait_until 10 "the lock on item $1" \
        q_any "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep($2) /* rt-hold */%' AND state = 'active' AND pid <> pg_backend_pid()"
}
ms_since() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }
hold "$i5" 8
SQL_TEXT="SET ROLE wq_citus_rt;
\echo ==hidden
SELECT workqueue.comment($i5, 'x');
\echo ==hidden_again
SELECT workqueue.extend_lease($i5, '1 minute');
\echo ==hidden_history
SELECT count(*) FROM workqueue.history($i5);
\echo ==hidden_sla
SELECT count(*) FROM workqueue.sla_status($i5);
\echo ==hidden_allowed
SELECT count(*) FROM workqueue.allowed_transitions($i5);
\echo ==unknown
SELECT workqueue.comment(999999999, 'x');"
start=${EPOCHREALTIME/./}
out=$(session)
took=$(ms_since "$start")
is "$(error_of "$out" hidden)" "item $i5 does not exist" "a scoped role: an item out of its scopes, locked by another session, does not exist"
is "$(item_shards "$out" hidden)" "$shards" "... read from every shard the first time"
is "$(error_of "$out" hidden_again) $(item_shards "$out" hidden_again) $(foreign "$out" hidden_again)" \
   "item $i5 does not exist 1 " "... then routed to its queue's shard: extend_lease() does not exist either"
for call in hidden_history hidden_sla hidden_allowed; do
    is "$(error_of "$out" "$call") $(item_shards "$out" "$call")" "item $i5 does not exist 1" "... ${call#hidden_}: the same, routed"
done
is "$(error_of "$out" unknown)" "item 999999999 does not exist" "... the same answer as for an unknown id"
ok $(( took < 4000 ? 0 : 1 )) "... and none of the calls waited for the lock (${took} ms; held for 8 s)"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'rt1' AND item_id = $i5 AND kind IN ('comment', 'lease_extended')")" 0 \
   "... the refused calls wrote nothing"
wait
q "UPDATE workqueue.item SET scope = '{emea}' WHERE queue = 'rt1' AND id = $i5" >/dev/null
SQL_TEXT="SET ROLE wq_citus_rt;
SELECT count(*) FROM workqueue.history($i5);
SELECT pg_sleep(1);
\echo ==visible
SELECT 'ok ' || workqueue.comment($i5, 'x');"
hold "$i5" 3
start=${EPOCHREALTIME/./}
out=$(session)
took=$(ms_since "$start")
is "$(part "$out" visible | grep -c '^ok ')" 1 "an item of its scope, held locked by another session: comment() works"
ok $(( took >= 2500 ? 0 : 1 )) "... after waiting for the lock (${took} ms; held for 3 s)"
wait

# a known item deleted since: does not exist, routed
SQL_TEXT="SELECT count(*) FROM workqueue.history($i4);
\! psql -XAtq -c \"DELETE FROM workqueue.item_event WHERE queue = 'rt1' AND item_id = $i4\" -c \"DELETE FROM workqueue.item WHERE queue = 'rt1' AND id = $i4\" >/dev/null
\echo ==gone
SELECT workqueue.update_fields($i4, '{\"b\": 2}');
\echo ==gone_history
SELECT count(*) FROM workqueue.history($i4);"
out=$(session)
is "$(error_of "$out" gone) $(item_shards "$out" gone)" "item $i4 does not exist 1" \
   "an item met, then deleted by another session: update_fields() says it does not exist (routed)"
is "$(error_of "$out" gone_history) $(item_shards "$out" gone_history)" "item $i4 does not exist 1" \
   "... history() too"

# the cache functions are not for PUBLIC
is "$(qerr "SET ROLE wq_citus_rt; SELECT workqueue._known_queue($i1)")" \
   "permission denied for function _known_queue" "_known_queue() is not PUBLIC"
is "$(qerr "SET ROLE wq_citus_rt; SELECT workqueue._remember_queue($i1, 'rt2')")" \
   "permission denied for function _remember_queue" "_remember_queue() is not PUBLIC"
is "$(q "SELECT workqueue._known_queue($i1) IS NULL")" t "a new session knows no item's queue"

finish
