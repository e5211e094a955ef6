# Sourced by the other scripts: create or reuse the project-local virtual environment .venv.
# Installs the exact tested set (constraints.txt) only when it or pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
stamp="$VENV/.c2fmae-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
NEED_GIB=8  # a fresh .venv holds 7.2 GiB (torch's CUDA build, as pip installs it on Linux)
if [ ! -x "$VENV/bin/python" ]; then
    free_gib=$(( $(df -Pk "$ROOT" | awk 'NR == 2 {print $4}') / 1024 / 1024 ))
    if [ "$free_gib" -lt "$NEED_GIB" ]; then
        echo "[c2fmae] only $free_gib GiB free on the disk of $ROOT; a fresh $VENV needs about $NEED_GIB GiB: free some space and rerun" >&2
        exit 1
    fi
    echo "[c2fmae] creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[c2fmae] installing c2fmae and its dependencies into $VENV (about 2 minutes the first time)" >&2
    log="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -c "$ROOT/constraints.txt" -e "$ROOT[dev]"; } >"$log" 2>&1; then
        grep -v "^WARNING: Location" "$log" | tail -n 30 >&2
        if grep -q "No space left on device" "$log"; then
            echo "[c2fmae] install failed: the disk of $VENV is full ($(df -Ph "$ROOT" | awk 'NR == 2 {print $4}') free, about $NEED_GIB GiB needed); full log: $log" >&2
            exit 1
        fi
        echo "[c2fmae] install failed; full log: $log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
# Ray binds to loopback only: a local job opens no ports to the network.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
# Progress bars in logs (not a terminal): one line every 30 s rather than many per second.
[ -t 2 ] || export TQDM_MININTERVAL="${TQDM_MININTERVAL:-30}"
