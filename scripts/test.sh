#!/usr/bin/env bash
# The whole test suite (slow end-to-end tests included). Extra arguments go to pytest.
# Without arguments (as CI runs it) the suite runs in two processes (pytest-xdist, one per core);
# with arguments, in one process unless they say `-n 2`.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
export RAY_AUTH_MODE=disabled
if [ "$#" -eq 0 ]; then
    set -- -n 2
fi
exec python -m pytest "$@"
