"""Streams completions through the gateway with the official SDKs while the
backend misbehaves (x-fakellm-fail), one thread per case, and prints one
JSON object with what the SDK saw in each: how many text deltas arrived,
the finish (stop) reason if any, the exception the SDK raised if any, and
how long after the last delta the stream ended. The Go test
(e2e/faults_stream_test.go) asserts on it.

usage: fault_client.py GATEWAY_URL MODEL:API:FAULT...   (API: openai|anthropic)
"""
import json
import sys
import threading
import time

import anthropic
import openai

base = sys.argv[1]
results = {}


def run(case):
    model, api, fault = case.split(":")
    headers = {"x-fakellm-fail": fault, "x-fakellm-tokens": "20", "x-fakellm-itl-ms": "5"}
    out = {"deltas": 0, "finish": None, "error": None}
    last = time.monotonic()
    try:
        if api == "openai":
            client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)
            stream = client.chat.completions.create(model=model, stream=True, extra_headers=headers,
                                                    messages=[{"role": "user", "content": "hello"}])
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        out["deltas"] += 1
                        last = time.monotonic()
                    if choice.finish_reason:
                        out["finish"] = choice.finish_reason
        else:
            client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, timeout=30)
            with client.messages.stream(model=model, max_tokens=64, extra_headers=headers,
                                        messages=[{"role": "user", "content": "hello"}]) as stream:
                for event in stream:
                    if event.type == "content_block_delta":
                        out["deltas"] += 1
                        last = time.monotonic()
                    elif event.type == "message_delta":
                        out["finish"] = event.delta.stop_reason
                stream.get_final_message()
    except Exception as e:  # what the SDK raised is the point of the test
        out["error"] = {"class": type(e).__name__, "message": str(e)[:300]}
    out["ended_after_last_delta_ms"] = round((time.monotonic() - last) * 1000)
    results[case] = out


threads = [threading.Thread(target=run, args=(c,)) for c in sys.argv[2:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
