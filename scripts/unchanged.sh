#!/usr/bin/env bash
# Run a command, then fail if it changed the checkout: `git status` with ignored and untracked
# files listed one by one (the virtual environment aside) must read the same before and after.
# make test runs the suite through it: tests write to temporary folders, never here.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    exec "$@"   # not a git checkout (an unpacked archive): nothing to compare with
fi
state() { git status --porcelain --ignored --untracked-files=all -- . ':(exclude).venv'; }
before=$(state)
"$@"
code=$?
after=$(state)
if [ "$before" != "$after" ]; then
    echo "unchanged.sh: '$*' changed the checkout (git status before/after):" >&2
    diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | head -40 >&2
    [ "$code" -ne 0 ] || code=1
fi
exit "$code"
