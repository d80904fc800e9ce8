#!/bin/sh
# A stand-in for `iris-smoke run` that costs a few milliseconds: it takes the arguments the
# canary passes (--log-dir, --run-id, --timeout, extras), writes a results.json with tests
# and streams, and exits with $FAKE_RUN_EXIT. $FAKE_RUN_LEAK=1 leaves a process behind in a
# session of its own, carrying the run's tag like everything a real run would start.
while [ $# -gt 0 ]; do
    case "$1" in
        --log-dir) dir=$2; shift 2 ;;
        --run-id) run=$2; shift 2 ;;
        *) shift ;;
    esac
done
mkdir -p "$dir/$run"
if [ "${FAKE_RUN_LEAK:-0}" = 1 ]; then
    setsid sleep 120 </dev/null >/dev/null 2>&1 &
fi
printf '{"run_id":"%s","outcome":"passed","exit_code":0,"duration_s":0.001,"tests":[{"name":"submit","outcome":"passed","duration_s":0.5},{"name":"gang","outcome":"failed","duration_s":1.5}],"streams":[{"vm":"vm-a","host":0,"lines":10,"gaps":1,"reconnects":2,"stale":false},{"vm":"vm-b","host":0,"lines":5,"gaps":0,"reconnects":0,"stale":true}],"processes":{"leaked":0}}\n' "$run" >"$dir/$run/results.json"
exit "${FAKE_RUN_EXIT:-0}"
