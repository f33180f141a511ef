"""Sends one request over a spent budget with the official `openai` and
`anthropic` SDKs, each with its default retries (2), and prints one JSON
object with the error each SDK raised; the Go test (e2e/budget_test.go)
asserts on it and on how many requests reached the gateway.

usage: budget_client.py GATEWAY_URL MODEL TENANT
"""
import json
import sys
import time

import anthropic
import openai

base, model, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"x-tenant": tenant}
out = {}

client = openai.OpenAI(base_url=base + "/v1", api_key="unused", default_headers=headers)
start = time.monotonic()
try:
    client.chat.completions.create(model=model, max_tokens=1000, messages=[{"role": "user", "content": "hi"}])
    out["openai"] = {"class": "none"}
except openai.APIStatusError as e:
    out["openai"] = {"class": type(e).__name__, "status": e.status_code, "code": e.code, "type": e.type,
                     "message": e.message, "retry_after": e.response.headers.get("retry-after"),
                     "should_retry": e.response.headers.get("x-should-retry"),
                     "budget_window": e.response.headers.get("x-streamgate-budget-window")}
out["openai"]["seconds"] = time.monotonic() - start

client = anthropic.Anthropic(base_url=base, api_key="unused", default_headers=headers)
start = time.monotonic()
try:
    client.messages.create(model=model, max_tokens=1000, messages=[{"role": "user", "content": "hi"}])
    out["anthropic"] = {"class": "none"}
except anthropic.APIStatusError as e:
    body = e.body if isinstance(e.body, dict) else {}
    out["anthropic"] = {"class": type(e).__name__, "status": e.status_code,
                        "type": body.get("error", {}).get("type"), "message": body.get("error", {}).get("message")}
out["anthropic"]["seconds"] = time.monotonic() - start
print(json.dumps(out))
