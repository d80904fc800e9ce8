#!/bin/sh
# A stand-in for `iris-smoke run` that costs a few milliseconds: it takes the arguments the
# canary passes (--log-dir, --run-id, --timeout, extras), writes a results.json with tests
# and streams, and exits with $FAKE_RUN_EXIT. $FAKE_RUN_LEAK=1 leaves a process behind in a
# session of its own, carrying the run's tag like everything a real run would start.
# $FAKE_RUN_OUTCOME (default passed) is the outcome results.json says. With
# $FAKE_RUN_CLEANUP_S set, it waits for SIGTERM (touching `running` in its directory first),
# then takes that long to clean up before it writes a cancelled verdict and exits 143.
# Given --tests (a probe's), it writes one test, controller_vitals, with the details the real
# fleet check records; its arguments go to `argv` in its directory, one a line.
# A whole results.json (supervisor/run_result.py's RunResult): run id, outcome, reasons, tests, streams.
verdict() {
    printf '{"schema_version":1,"run_id":"%s","version":"0.0.0","started_at":"2026-01-01T00:00:00.000000Z","finished_at":"2026-01-01T00:00:00.001000Z","duration_s":0.001,"timeout_s":60,"outcome":"%s","exit_code":0,"failure_reasons":[%s],"children":[],"processes":{"spawned":0,"reaped":0,"orphans_reaped":0,"killed_at_stop":0,"leaked":0,"leaked_processes":[],"zombies":0,"grpc_imported":false},"observe":false,"cluster":{"kind":"iris","address":"http://127.0.0.1:1","mode":null,"prefix":"smoke","vm_prefix":"smoke","state_dir":null,"kept":false,"pid":0},"cloud_cleanup":null,"jobs_confirmed":null,"foreign_jobs":[],"tests":[%s],"streams":[%s],"observation":{"host_listings":1,"most_failed_listings_in_a_row":0,"hosts_over_limit":0,"hosts_rejected":{"count":0,"sample":[],"reasons":{},"fields":{}}},"autoscaler_actions":[],"api_mismatch":null,"controller_unauthenticated":null,"controller_timeout":null,"reply_too_large":null,"controller_outage":null,"diagnostics":{}}\n' "$1" "$2" "$3" "$4" "$5" >"$dir/$run/results.json"
}
all="$*"
while [ $# -gt 0 ]; do
    case "$1" in
        --log-dir) dir=$2; shift 2 ;;
        --run-id) run=$2; shift 2 ;;
        --tests) tests=$2; shift 2 ;;
        *) shift ;;
    esac
done
mkdir -p "$dir/$run"
printf '%s\n' $all >"$dir/$run/argv"
if [ -n "${tests:-}" ]; then
    verdict "$run" passed "" '{"name":"controller_vitals","outcome":"passed","error":"","duration_s":0.2,"details":{"health_s":0.01,"select_1_s":0.004,"rss_bytes":123456789,"threads":12,"fds":40,"tree_hash":"abc"}}' ""
    exit 0
fi
if [ "${FAKE_RUN_LEAK:-0}" = 1 ]; then
    setsid sleep 120 </dev/null >/dev/null 2>&1 &
fi
if [ -n "${FAKE_RUN_CLEANUP_S:-}" ]; then
    trap 'kill $holder; sleep "$FAKE_RUN_CLEANUP_S"; verdict "$run" cancelled "\"sigterm\"" "" ""; exit 143' TERM
    sleep 600 &
    holder=$!
    touch "$dir/$run/running"
    wait $holder
fi
stream='"vm":"vm-a","host":0,"role":"worker","state":"exited","starts":1,"no_data":false'
verdict "$run" "${FAKE_RUN_OUTCOME:-passed}" "" \
    '{"name":"submit","outcome":"passed","error":"","duration_s":0.5},{"name":"gang","outcome":"failed","error":"","duration_s":1.5}' \
    "{\"name\":\"stream:vm-a\",$stream,\"lines\":10,\"gaps\":1,\"reconnects\":2,\"stale\":false},{\"name\":\"stream:vm-b\",$stream,\"lines\":5,\"gaps\":0,\"reconnects\":0,\"stale\":true}"
exit "${FAKE_RUN_EXIT:-0}"
