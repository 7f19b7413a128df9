#!/usr/bin/env bash
# Checks deploy/dialer.service: `systemd-analyze verify` must print nothing
# and `systemd-analyze security` must rate it at most 2.0 (the README quotes
# the figure). verify needs ExecStart's binary to exist, so it checks a
# temporary copy of the unit whose ExecStart is the binary given (default
# target/debug/dialer, built if missing); the security rating reads the
# unit as shipped.
#   deploy/check-unit.sh [path/to/dialer]
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=2.0
unit=deploy/dialer.service

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze is missing: installing systemd's tools"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

binary=${1:-target/debug/dialer}
if [ ! -x "$binary" ]; then
  cargo build --quiet --bin dialer
fi
binary=$(realpath "$binary")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/local/bin/dialer |ExecStart=$binary |" "$unit" >"$work/dialer.service"
if ! grep -q "^ExecStart=$binary " "$work/dialer.service"; then
  echo "check-unit: ExecStart in $unit is not /usr/local/bin/dialer ..." >&2
  exit 1
fi

verify=$(systemd-analyze verify "$work/dialer.service" 2>&1 || true)
if [ -n "$verify" ]; then
  echo "check-unit: systemd-analyze verify $unit:" >&2
  echo "$verify" >&2
  exit 1
fi

security=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1 || true)
level=$(printf '%s\n' "$security" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$level" ]; then
  echo "check-unit: no exposure level in systemd-analyze security's output:" >&2
  echo "$security" >&2
  exit 1
fi
if awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l > m) }'; then
  echo "$security" >&2
  echo "check-unit: exposure $level is above $MAX_EXPOSURE" >&2
  exit 1
fi
echo "check-unit: verify clean; exposure $level (at most $MAX_EXPOSURE)"
