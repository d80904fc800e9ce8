#!/usr/bin/env bash
# Check the systemd units in systemd/ as code (CI calls this when it exists):
#   1. `systemd-analyze verify` on every unit: syntax, directives, dependencies;
#   2. `systemd-analyze security --offline=true`: each service's exposure must be <= 1.0.
# A template unit (`name@.service`) is checked as an instance, `name@check.service`.
# Each example drop-in (systemd/examples/*/<unit>.service.d/, named for the unit it extends:
# an instance of the template, or a plain unit) is checked the same way, applied to that unit.
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
# The units as shipped, templates under their real names, beside the example drop-ins.
mkdir "$tmp/examples"
cp "${units[@]}" "$tmp/"
cp "${units[@]}" "$tmp/examples/"
cp -r systemd/examples/*/*.service.d "$tmp/examples/"
for template in "$tmp"/*@.service; do
    [ -e "$template" ] && mv "$template" "${template%@.service}@check.service"
done
if [ ! -x "$INSTALLED" ]; then
    mkdir "$tmp/bin"
    printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/iris-smoke"
    chmod 0755 "$tmp/bin/iris-smoke"
    sed -i "s|$INSTALLED|$tmp/bin/iris-smoke|g" "$tmp"/*.service "$tmp"/examples/*.service
fi

status=0

verify() {  # verify UNIT_PATH [LABEL]: no error, and no warning naming the unit or its drop-ins
    local unit=$1 name out label
    name=$(basename "$unit")
    label=${2:-$name}
    # verify also loads the units ours depend on; complaints about those are the host's
    # business, so only lines naming our unit fail the check (and a non-zero exit).
    if ! out=$(systemd-analyze verify "$unit" 2>&1); then
        echo "check_systemd: verify $label failed:" >&2
        echo "$out" >&2
        status=1
    elif grep -F "$name" <<<"$out" >&2; then
        echo "check_systemd: verify $label: warnings above" >&2
        status=1
    else
        echo "check_systemd: verify $label: ok"
    fi
}

security() {  # security UNIT_PATH [LABEL]: exposure at most MAX_EXPOSURE
    local unit=$1 out level label
    label=${2:-$(basename "$unit")}
    out=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
    level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$out")
    if [ -z "$level" ]; then
        echo "check_systemd: security $label: no 'Overall exposure level' line:" >&2
        echo "$out" >&2
        status=1
    elif awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l > m) }'; then
        echo "check_systemd: security $label: exposure $level > $MAX_EXPOSURE:" >&2
        grep '✗' <<<"$out" >&2 || true
        status=1
    else
        echo "check_systemd: security $label: exposure $level <= $MAX_EXPOSURE"
    fi
}

for unit in "$tmp"/*.service "$tmp"/*.timer; do
    verify "$unit"
done
for unit in "$tmp"/*.service; do
    security "$unit"
done
# An instance needs no file of its own: systemd finds its template beside the path.
for dropins in systemd/examples/*/*.service.d; do
    unit="$tmp/examples/$(basename "${dropins%.d}")"
    verify "$unit" "$dropins"
    security "$unit" "$dropins"
done
exit $status
