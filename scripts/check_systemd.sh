#!/usr/bin/env bash
# Check the systemd units in systemd/ as code (CI calls this when it exists):
#   1. `systemd-analyze verify` on every unit: syntax, directives, dependencies;
#   2. `systemd-analyze security --offline=true`: each service's exposure must be <= 1.0.
# A template unit (`name@.service`) is checked as an instance, `name@check.service`.
# It installs nothing: it needs systemd-analyze (Debian package `systemd`, v250 or later
# for --offline) and fails with that advice when it is missing.
#
# Why a copy of the units: `verify` fails when ExecStart's binary does not exist, and the
# units name the installed entry point /usr/local/bin/iris-smoke, absent on a CI machine.
# When it is absent, the copy in a temporary directory points ExecStart at a stub
# executable of the same name there; nothing else in the units is changed.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=1.0
INSTALLED=/usr/local/bin/iris-smoke

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check_systemd: systemd-analyze not found: install Debian's systemd package (apt-get install systemd)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
units=(systemd/*.service systemd/*.timer)
cp "${units[@]}" "$tmp/"
for template in "$tmp"/*@.service; do
    [ -e "$template" ] && mv "$template" "${template%@.service}@check.service"
done
if [ ! -x "$INSTALLED" ]; then
    mkdir "$tmp/bin"
    printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/iris-smoke"
    chmod 0755 "$tmp/bin/iris-smoke"
    sed -i "s|$INSTALLED|$tmp/bin/iris-smoke|g" "$tmp"/*.service
fi

status=0
for unit in "$tmp"/*.service "$tmp"/*.timer; do
    name=$(basename "$unit")
    # verify also loads the units ours depend on; complaints about those are the host's
    # business, so only lines naming our unit fail the check (and a non-zero exit).
    if ! out=$(systemd-analyze verify "$unit" 2>&1); then
        echo "check_systemd: verify $name failed:" >&2
        echo "$out" >&2
        status=1
    elif grep -F "$name" <<<"$out" >&2; then
        echo "check_systemd: verify $name: warnings above" >&2
        status=1
    else
        echo "check_systemd: verify $name: ok"
    fi
done

for unit in "$tmp"/*.service; do
    name=$(basename "$unit")
    out=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
    level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$out")
    if [ -z "$level" ]; then
        echo "check_systemd: security $name: no 'Overall exposure level' line:" >&2
        echo "$out" >&2
        status=1
    elif awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l > m) }'; then
        echo "check_systemd: security $name: exposure $level > $MAX_EXPOSURE:" >&2
        grep '✗' <<<"$out" >&2 || true
        status=1
    else
        echo "check_systemd: security $name: exposure $level <= $MAX_EXPOSURE"
    fi
done
exit $status
