#!/usr/bin/env bash
# Lint and format check with ruff (settings in pyproject.toml). `bash scripts/lint.sh --fix` fixes
# what ruff can and reformats the tree.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if [ "${1:-}" = "--fix" ]; then
    ruff check --fix . && ruff format .
else
    ruff check . && ruff format --check .
fi
