#!/usr/bin/env bash
# The whole test suite (slow end-to-end tests included). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
export RAY_AUTH_MODE=disabled
exec python -m pytest "$@"
