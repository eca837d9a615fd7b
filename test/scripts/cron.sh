#!/usr/bin/env bash
# pg_cron fires a scheduled sync: schedule_sync creates a cron job whose
# run queues a sync run that the worker completes.  pg_cron 1.4 schedules
# by the minute, so this waits for the next minute boundary (up to ~75 s).
source "$(dirname "$0")/../lib.sh"
api_start
q "CREATE EXTENSION IF NOT EXISTS pg_cron; CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
control '{"reset": true}'
q "SELECT workqueue.create_queue('cron1');
   SELECT workqueue.create_source('cron1', 'cron1', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null

job=$(q "SELECT workqueue.schedule_sync('cron1', '* * * * *', \"full\" => true)")
is "$(q "SELECT jobname || ' | ' || schedule || ' | ' || command FROM cron.job WHERE jobid = $job")" \
   "workqueue sync cron1 | * * * * * | SELECT workqueue.sync('cron1', \"full\" => true)" "schedule_sync creates a pg_cron job"
is "$(q "SELECT workqueue.schedule_sync('cron1', '*/2 * * * *')")" "$job" "scheduling the same source again updates that job"
q "SELECT workqueue.schedule_sync('cron1', '* * * * *', \"full\" => true)" >/dev/null
is "$(qerr "SELECT workqueue.schedule_sync('nope', '* * * * *')")" 'source "nope" does not exist' "an unknown source is refused"
is "$(qerr "SELECT workqueue.schedule_sync('cron1', 'every full moon')")" 'invalid schedule: every full moon' "pg_cron's own error for a bad schedule"

run=""
cron_run() { run=$(q "SELECT id FROM workqueue.sync_run WHERE source = 'cron1' ORDER BY id LIMIT 1"); [[ -n $run ]]; }
wait_until -i 0.5 75 "pg_cron to queue a sync run of source cron1" cron_run
ok $([[ -n $run ]]; echo $?) "pg_cron queued a sync run within 75 s"
if [[ -n $run ]]; then
    is "$(wait_run "$run")" "completed|" "the scheduled run completes"
    is "$(q "SELECT \"full\" FROM workqueue.sync_run WHERE id = $run")" t "as a full run, as scheduled"
    is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cron1'")" 250 "and loaded the cases"
fi
is "$(q "SELECT status FROM cron.job_run_details WHERE jobid = $job ORDER BY runid LIMIT 1")" succeeded "pg_cron records the job as succeeded"
q "SELECT cron.unschedule($job)" >/dev/null
finish
