#!/usr/bin/env bash
# The main job end to end on the embedded defaults: generate a marketplace, train and register both scorers
# in MLflow (SQLite under $TRIAGE_HOME), start the BentoML service, score a fresh batch over HTTP and print
# the top of the investigator queue. The service keeps running afterwards; `make stop` stops it.
set -euo pipefail
home="${TRIAGE_HOME:-var}"
port="${DEMO_PORT:-3000}"
bin=.venv/bin
data="$home/data/demo"
mkdir -p "$home"
started=$(date +%s)

step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

step "generate a synthetic marketplace"
"$bin/triage" generate --out "$data" --listings "${DEMO_LISTINGS:-200000}" --accounts "${DEMO_ACCOUNTS:-20000}" --seed "${DEMO_SEED:-1}"

# every scored entity type of the registry (triage/entities.py): listings and accounts
for entity in $("$bin/triage" entities --scored); do
  step "train, evaluate and register the $entity scorer"
  "$bin/triage" train --entity "$entity" --data "$data"
done

step "create an API key for the demo (keys are stored hashed; the secret is shown once)"
key_line=$("$bin/triage" keys create --role admin --name "demo $(date -u +%Y-%m-%dT%H:%M:%SZ)")
echo "$key_line" | sed -E 's/(tk_[0-9a-f]+_)[A-Za-z0-9_-]+/\1…/'
export TRIAGE_API_KEY="${key_line##*: }"
# owner-only from the start (a chmod after writing would leave it readable for a moment)
(umask 077; echo "$TRIAGE_API_KEY" > "$home/demo-api-key")

step "start the BentoML service on 127.0.0.1:$port"
bash scripts/stop-server.sh
setsid "$bin/bentoml" serve serving.service:TriageService --host 127.0.0.1 --port "$port" \
  >"$home/serve.log" 2>&1 < /dev/null &
echo $! > "$home/serve.pid"
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$home/serve.pid")" 2>/dev/null || grep -q "Application startup failed" "$home/serve.log"; then
    bash scripts/stop-server.sh >/dev/null
    echo "the service failed to start; its log:" >&2; tail -n 30 "$home/serve.log" >&2; exit 1
  fi
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { echo "service not ready after 60 s" >&2; exit 1; }

step "score a fresh batch through the HTTP API"
"$bin/triage" score-demo --data "$data" --url "http://127.0.0.1:$port"

step "done"
cat <<MSG
The service is running at http://127.0.0.1:$port (Swagger UI at /, OpenAPI spec at /docs.json, metrics at /metrics).
Reviewer queue page: http://127.0.0.1:$port/ui/ (sign in with any user name and the API key in $home/demo-api-key)
API calls need the key too: curl -H "Authorization: Bearer \$(cat $home/demo-api-key)" ...
MLflow runs and the registry: $bin/mlflow ui --backend-store-uri sqlite:///$(realpath "$home")/mlflow.db
Stop the service with: make stop
MSG
