#!/usr/bin/env bash
# test/citus/coverage.sh — every function of the API is called on a
# distributed install by some test/citus/*.sh (issue 15.2): the list comes
# from the catalog (the functions PUBLIC may execute, as
# test/pgtap/86_scope_paths.sql lists them on one node), so a new function
# cannot be forgotten here.  Internal functions (a leading "_") are reached
# through the API's.  Also calls the ones no other suite needs, with the
# single-node answers.
# (Runs after basic.sh, on the cluster it distributed; distributes if not.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh

citus_distribute

q "SELECT workqueue.create_queue('cov1')" >/dev/null 2>&1
q "DO \$\$BEGIN CREATE ROLE wq_cov_agent LOGIN IN ROLE workqueue_agent; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null

# --- the calls no other suite makes ------------------------------------------

is "$(q "SELECT workqueue.is_admin()")" t "is_admin() of a superuser"
is "$(q "SET ROLE wq_cov_agent; SELECT workqueue.is_admin()")" f "is_admin() of an agent"
is "$(qerr "SELECT workqueue.add_member('cov_role', 'wq_cov_agent')")" "" "add_member()"
is "$(qerr "SELECT workqueue.assignment_strategy('cov_role', 'least_loaded')")" "" "assignment_strategy()"
is "$(q "SELECT strategy FROM workqueue.role_assignment WHERE role = 'cov_role'")" least_loaded "... is recorded"
err=$(qerr "SELECT workqueue.assignment_strategy('cov_role', 'random')")
[[ $err == *strategy* ]]
ok $? "... a strategy it does not know is refused ($err)"
is "$(qerr "SELECT workqueue.remove_member('cov_role', 'wq_cov_agent')")" "" "remove_member()"
is "$(q "SELECT count(*) FROM workqueue.role_member WHERE role = 'cov_role' AND member = 'wq_cov_agent' AND active")" 0 \
   "... the member is gone or inactive"
is "$(qerr "SELECT workqueue.grant_scope('wq_cov_agent', 'cov_scope')")" "" "grant_scope()"
is "$(qerr "SELECT workqueue.revoke_scope('wq_cov_agent', 'cov_scope')")" "" "revoke_scope()"
is "$(q "SELECT count(*) FROM workqueue.scope_grant WHERE scope = 'cov_scope'")" 0 "... the grant is gone"
is "$(q "SELECT workqueue.business_add('2025-06-06 16:00+00', '1 hour', '24x7')")" "2025-06-06 17:00:00+00" \
   "business_add() on the built-in 24x7 calendar"
is "$(q "SELECT workqueue.business_between('2025-06-06 16:00+00', '2025-06-07 16:00+00', '24x7')")" "24:00:00" \
   "business_between()"
is "$(q "SELECT workqueue.business_add_days('2025-06-06 16:00+00', 2, '24x7')")" "2025-06-08 16:00:00+00" \
   "business_add_days()"
q "SELECT workqueue.create_source('cov_src', 'cov1', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/cases/{ids}')" >/dev/null 2>&1
is "$(qerr "SELECT workqueue.alter_source('cov_src', '{\"details_url\": \"http://127.0.0.1:9/case/{ids}\"}')")" "" \
   "alter_source()"
is "$(q "SELECT details_url FROM workqueue.source WHERE name = 'cov_src'")" "http://127.0.0.1:9/case/{ids}" "... is recorded"
run=$(q "SELECT workqueue.sync('cov_src')")
is "$(q "SELECT status || ' ' || (error IS NOT NULL) FROM workqueue.wait(${run:-0}, '60 seconds')")" "failed true" \
   "wait() returns the run the coordinator's sync worker ran (against a closed port: failed, with its error)"
job=$(q "SELECT workqueue.schedule_sync('cov_src', '17 3 * * *')")
is "$(q "SELECT schedule FROM cron.job WHERE jobid = ${job:-0}")" "17 3 * * *" "schedule_sync() makes a pg_cron job"

q "SELECT workqueue.create_sla_policy('cov_pol', '24x7', '{\"1\": \"1 hour\", \"2\": \"2 hours\", \"3\": \"4 hours\", \"4\": \"8 hours\", \"5\": \"1 day\"}')" >/dev/null 2>&1
q "SELECT workqueue.create_queue('cov_sla')" >/dev/null 2>&1
q "SELECT workqueue.alter_queue('cov_sla', '{\"sla_policy\": \"cov_pol\"}')" >/dev/null
sla_item=$(q "SELECT workqueue.add('cov_sla', '{}', 1)")
q "SELECT workqueue.create_sla_policy('cov_pol', '24x7', '{\"1\": \"3 hours\", \"2\": \"2 hours\", \"3\": \"4 hours\", \"4\": \"8 hours\", \"5\": \"1 day\"}')" >/dev/null
is "$(q "SELECT count(*) FROM workqueue.recompute_sla('cov_sla') WHERE item = $sla_item")" 1 "recompute_sla() (dry run) lists the item"
is "$(qerr "SELECT count(*) FROM workqueue.recompute_sla('cov_sla', false)")" "" "recompute_sla(dry_run => false)"
is "$(q "SELECT sla_target || ' ' || (due_at - created_at >= interval '2 hours 59 minutes')
           FROM workqueue.item WHERE queue = 'cov_sla' AND id = $sla_item")" "03:00:00 true" "... moves the item to the new target"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cov_sla' AND item_id = $sla_item AND kind = 'sla_recomputed'")" 1 \
   "... with its event"

# --- every function of the API is called by a Citus suite --------------------

missing=()
while read -r fn; do
    grep -q "workqueue\.$fn(" test/citus/*.sh || missing+=("$fn")
done < <(q "SELECT DISTINCT p.proname FROM pg_proc p
             WHERE p.pronamespace = 'workqueue'::regnamespace AND p.proname !~ '^_'
               AND has_function_privilege('public', p.oid, 'EXECUTE')
             ORDER BY 1")
is "${missing[*]:-}" "" "every function PUBLIC may execute is called by a test/citus/*.sh suite"
is "$(q "SELECT count(*) > 40 FROM pg_proc p WHERE p.pronamespace = 'workqueue'::regnamespace AND p.proname !~ '^_'
           AND has_function_privilege('public', p.oid, 'EXECUTE')")" t "... (the catalog lists them: more than 40)"

q "SELECT cron.unschedule(${job:-0})" >/dev/null 2>&1
finish
