#!/usr/bin/env bash
# Retrieval demo: fakellm on 127.0.0.1:18080, Chroma (`chroma run`, from the
# chromadb package in .venv) on 127.0.0.1:18000 with a throwaway data
# directory, and `streamgate run` with examples/rag/streamgate.yaml; then
# examples/rag/rag.py drives embeddings, Chroma and chat through the gateway
# with one key, and everything stops.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
if ! "$py" -c 'import chromadb, openai' 2>/dev/null; then
  echo "demo-rag needs chromadb and openai in .venv: .venv/bin/pip install chromadb==1.5.9 openai==3.51.0" >&2
  exit 1
fi
data=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT INT TERM
bin/fakellm -listen 127.0.0.1:18080 -name fakellm &
pids+=($!)
.venv/bin/chroma run --path "$data" --host 127.0.0.1 --port 18000 >"$data/chroma.log" 2>&1 &
pids+=($!)
bin/streamgate run -c examples/rag/streamgate.yaml >"$data/streamgate.log" 2>&1 &
pids+=($!)
up() { curl -fsS -o /dev/null "$@" 2>/dev/null; }
for _ in $(seq 1 300); do
  if up http://127.0.0.1:18000/api/v2/heartbeat && up http://127.0.0.1:10000/v1/models -H 'authorization: Bearer sk-demo-rag-0f3a9c'; then break; fi
  sleep 0.1
done
"$py" examples/rag/rag.py http://127.0.0.1:10000 sk-demo-rag-0f3a9c "$@"
