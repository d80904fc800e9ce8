#!/usr/bin/env bash
# Build (once) a venv with the real Iris (PyPI `marin-iris`) and print the absolute path of its
# `iris` executable on stdout; all progress goes to stderr.
#
#   iris_bin=$(bash scripts/install_iris.sh)
#
# The venv (~650 MB) lives outside the repository, keyed by the pinned versions:
#   ${IRIS_SMOKE_IRIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/iris-smoke/iris-<iris version>}
# A second call with the same versions returns at once. Pins are in scripts/iris-versions.env;
# override them with IRIS_SMOKE_IRIS_VERSION / IRIS_SMOKE_FINELOG_VERSION, or set
# IRIS_SMOKE_IRIS_VERSION=latest to try the newest marin-iris and marin-finelog, dev releases
# included (their dependencies stay on stable releases); that one is built in iris-latest and
# refreshed only when the directory is removed.
#
# Iris needs Python >= 3.12 (on 3.11 pip silently stops at a release too old to be useful).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=iris-versions.env
. "$here/iris-versions.env"
IRIS_VERSION="${IRIS_SMOKE_IRIS_VERSION:-$IRIS_VERSION}"
FINELOG_VERSION="${IRIS_SMOKE_FINELOG_VERSION:-$FINELOG_VERSION}"
if [ "$IRIS_VERSION" = latest ]; then
    FINELOG_VERSION=latest
fi

log() { echo "install_iris: $*" >&2; }
die() { log "error: $*"; exit 1; }

venv_dir="${IRIS_SMOKE_IRIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/iris-smoke/iris-$IRIS_VERSION}"
marker="$venv_dir/.iris-smoke-installed"
want="marin-iris=$IRIS_VERSION marin-finelog=$FINELOG_VERSION"

if [ -f "$marker" ] && [ -x "$venv_dir/bin/iris" ]; then
    if [ "$(head -n 1 "$marker")" = "$want" ]; then
        echo "$venv_dir/bin/iris"
        exit 0
    fi
    die "$venv_dir holds $(head -n 1 "$marker"), not $want; remove it or set IRIS_SMOKE_IRIS_VENV"
fi
[ ! -e "$venv_dir" ] || die "$venv_dir exists but is not a finished install; remove it and run again"

# A Python >= 3.12, 3.12 first (the pinned versions were tested on it). With pyenv shims,
# `python3.12` may be on PATH yet refuse to run until PYENV_VERSION names an installed 3.12.x.
python=() # the command (with its env prefix) that runs a suitable interpreter
python_ok() { "$@" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
for minor in 3.12 3.13; do
    if command -v "python$minor" >/dev/null && python_ok "python$minor"; then
        python=("python$minor")
        break
    fi
    if command -v pyenv >/dev/null; then
        pyenv_version=$(pyenv versions --bare 2>/dev/null | grep -E "^${minor//./\\.}\.[0-9]+\$" | sort -V | tail -n 1 || true)
        if [ -n "$pyenv_version" ] && python_ok env PYENV_VERSION="$pyenv_version" "python$minor"; then
            python=(env PYENV_VERSION="$pyenv_version" "python$minor")
            break
        fi
    fi
done
[ ${#python[@]} -gt 0 ] || die "the real Iris needs Python >= 3.12 and none was found (tried python3.12, python3.13, pyenv).
Install one, e.g. 'apt-get install python3.12 python3.12-venv' or 'pyenv install 3.12', and run again."

# Build next to the target and rename when complete: a half-built venv never looks finished.
mkdir -p "$(dirname "$venv_dir")"
tmp_dir=$(mktemp -d "$venv_dir.tmp.XXXXXX")
chmod 755 "$tmp_dir" # mktemp makes it private; the finished venv should look like any other
trap 'rm -rf "$tmp_dir"' EXIT
log "building $want with $("${python[@]}" --version 2>&1) in $venv_dir (about 650 MB, a few minutes)"
"${python[@]}" -m venv --prompt "$(basename "$venv_dir")" "$tmp_dir"
# --no-compile: bytecode compiled here would name the temp dir in tracebacks; compiled after the rename.
pip=("$tmp_dir/bin/python" -m pip -q --disable-pip-version-check)
iris_pin=$IRIS_VERSION finelog_pin=$FINELOG_VERSION
if [ "$IRIS_VERSION" = latest ]; then
    # Only these packages may be pre-releases: a blanket `install --pre` also takes pre-releases of
    # their dependencies (seen: httpx 1.0.dev6, which breaks `import iris`).
    # (`pip index` is experimental; with -q it prints nothing at all.)
    newest() {
        "$tmp_dir/bin/python" -m pip --disable-pip-version-check index versions --pre "$1" 2>/dev/null |
            sed -n "1s/^$1 (\(.*\))\$/\1/p"
    }
    iris_pin=$(newest marin-iris)
    finelog_pin=$(newest marin-finelog)
    [ -n "$iris_pin" ] && [ -n "$finelog_pin" ] || die "could not look up the newest marin-iris / marin-finelog"
    log "newest: marin-iris $iris_pin, marin-finelog $finelog_pin"
fi
"${pip[@]}" install --no-compile "marin-iris[controller]==$iris_pin" \
    "marin-finelog==$finelog_pin" "marin-finelog-server==$finelog_pin" >&2
"$tmp_dir/bin/iris" --help >/dev/null || die "the installed iris does not run (see above)"
installed=$("$tmp_dir/bin/python" -m pip list --format=freeze 2>/dev/null | grep -E '^marin-(iris|finelog)' | tr '\n' ' ')
log "installed: $installed"

# A venv's scripts name its own path: point them (shebangs, activate*, pyvenv.cfg) at the final
# path before the rename. The interpreter links point at the base Python and need nothing.
for script in "$tmp_dir"/bin/*; do
    if [ -f "$script" ] && [ ! -L "$script" ] && head -c 2 "$script" | grep -q '#!'; then
        sed -i "1,3s|$tmp_dir|$venv_dir|g" "$script"
    fi
done
sed -i "s|$tmp_dir|$venv_dir|g" "$tmp_dir/pyvenv.cfg" "$tmp_dir"/bin/activate*
printf '%s\n%s\n' "$want" "$installed" >"$tmp_dir/.iris-smoke-installed"
if ! mv -T "$tmp_dir" "$venv_dir" 2>/dev/null; then
    # Another install of the same versions finished first: take its result.
    [ -f "$marker" ] && [ "$(head -n 1 "$marker")" = "$want" ] || die "could not move the new venv to $venv_dir"
    log "another install finished first; using it"
    echo "$venv_dir/bin/iris"
    exit 0
fi
trap - EXIT
# Optional speed-up (a missing .pyc is rebuilt on import), so it runs after the venv is in place.
"$venv_dir/bin/python" -m compileall -q -j 0 "$venv_dir/lib" >/dev/null 2>&1 || true
echo "$venv_dir/bin/iris"
