#!/usr/bin/env bash
# Install the system packages the test suite's real servers need (idempotent, quiet).
# The ssh source tests start an OpenSSH sshd and a PostgreSQL cluster on loopback.
# The report tests render the HTML report in Debian's headless Chromium.
set -euo pipefail

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
    || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "ensure_test_deps: need root to install: ${missing[*]}" >&2; exit 1
    fi
else
    SUDO=
fi
echo "ensure_test_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { "$@" >>"$log" 2>&1 || { cat "$log" >&2; echo "ensure_test_deps: failed: $*" >&2; exit 1; }; }
run $SUDO apt-get update -qq
# policy-rc.d keeps the package from starting a system sshd/postgres on port 22/5432.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
trap 'rm -f "$log"; [ "$created_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
run $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
