#!/usr/bin/env bash
# Stop the demo service started by scripts/demo.sh, if it is running.
set -euo pipefail
pidfile="${TRIAGE_HOME:-var}/serve.pid"
if [[ -f "$pidfile" ]]; then
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped the service (pid $pid)"
  fi
  rm -f "$pidfile"
fi
