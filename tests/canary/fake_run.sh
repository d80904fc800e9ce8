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
    printf '{"run_id":"%s","outcome":"passed","exit_code":0,"started_at":"2026-01-01T00:00:00+00:00","duration_s":0.001,"tests":[{"name":"controller_vitals","outcome":"passed","duration_s":0.2,"details":{"health_s":0.01,"select_1_s":0.004,"rss_bytes":123456789,"threads":12,"fds":40,"tree_hash":"abc"}}],"streams":[],"processes":{"leaked":0}}\n' "$run" >"$dir/$run/results.json"
    exit 0
fi
if [ "${FAKE_RUN_LEAK:-0}" = 1 ]; then
    setsid sleep 120 </dev/null >/dev/null 2>&1 &
fi
if [ -n "${FAKE_RUN_CLEANUP_S:-}" ]; then
    trap 'kill $holder; sleep "$FAKE_RUN_CLEANUP_S"; printf "{\"outcome\":\"cancelled\",\"failure_reasons\":[\"sigterm\"]}\n" >"$dir/$run/results.json"; exit 143' TERM
    sleep 600 &
    holder=$!
    touch "$dir/$run/running"
    wait $holder
fi
printf '{"run_id":"%s","outcome":"%s","exit_code":0,"duration_s":0.001,"tests":[{"name":"submit","outcome":"passed","duration_s":0.5},{"name":"gang","outcome":"failed","duration_s":1.5}],"streams":[{"name":"stream:vm-a","vm":"vm-a","host":0,"lines":10,"gaps":1,"reconnects":2,"stale":false},{"name":"stream:vm-b","vm":"vm-b","host":0,"lines":5,"gaps":0,"reconnects":0,"stale":true}],"processes":{"leaked":0}}\n' "$run" "${FAKE_RUN_OUTCOME:-passed}" >"$dir/$run/results.json"
exit "${FAKE_RUN_EXIT:-0}"
