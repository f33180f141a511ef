#!/usr/bin/env bash
# Starts the demo: fakellm on 127.0.0.1:18080 and `streamgate run` (which
# starts Envoy) with examples/streamgate.yaml. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bin/fakellm -listen 127.0.0.1:18080 -name fakellm -ttft 150ms -itl 30ms &
fake=$!
trap 'kill $fake 2>/dev/null || true' EXIT
bin/streamgate run -c examples/streamgate.yaml &
sg=$!
trap 'kill $sg $fake 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null http://127.0.0.1:10000/v1/models 2>/dev/null; then break; fi
  sleep 0.1
done
cat <<'MSG'

Streamgate is up on http://127.0.0.1:10000 (Envoy admin 127.0.0.1:9901, metrics 127.0.0.1:9464).
Try a streaming chat completion:

  curl -N http://127.0.0.1:10000/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-demo","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'

Press Ctrl-C to stop.
MSG
wait $sg
