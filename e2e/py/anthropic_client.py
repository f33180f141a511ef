"""Drives the gateway with the official `anthropic` SDK against a model
whose backend speaks OpenAI Chat Completions. Prints one JSON object with
what the SDK saw; the Go test (e2e/translate_test.go) asserts on it.

usage: anthropic_client.py GATEWAY_URL MODEL
"""
import json
import sys

import anthropic

base, model = sys.argv[1], sys.argv[2]
client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
messages = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": [{"type": "text", "text": "Say something."}]}]
out = {}

# Streaming through the SDK's MessageStream, which rebuilds the message
# from the events and rejects any out-of-order event.
events = []
with client.messages.stream(model=model, max_tokens=100, system="Be brief.", messages=messages) as stream:
    for event in stream:
        events.append(event.type)
    final = stream.get_final_message()
out["stream"] = {
    "events": events,
    "text": "".join(b.text for b in final.content if b.type == "text"),
    "stop_reason": final.stop_reason,
    "input_tokens": final.usage.input_tokens,
    "output_tokens": final.usage.output_tokens,
    "model": final.model,
}

# A streamed tool call: input_json_delta events, then a tool_result turn.
tools = [{"name": "get_weather", "description": "Current weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
weather = [{"role": "user", "content": "Weather in Paris?"}]
json_deltas = 0
with client.messages.stream(model=model, max_tokens=100, tools=tools, messages=weather) as stream:
    for event in stream:
        if event.type == "input_json":
            json_deltas += 1
    final = stream.get_final_message()
uses = [b for b in final.content if b.type == "tool_use"]
out["tool_stream"] = {
    "stop_reason": final.stop_reason,
    "tool_uses": [{"id": b.id, "name": b.name, "input": b.input} for b in uses],
    "json_deltas": json_deltas,
    "text": "".join(b.text for b in final.content if b.type == "text"),
}
after = weather + [{"role": "assistant", "content": final.content},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C"}]}]
answer = client.messages.create(model=model, max_tokens=2, tools=tools, messages=after)
out["tool_result"] = {"stop_reason": answer.stop_reason, "blocks": [b.type for b in answer.content]}

msg = client.messages.create(model=model, max_tokens=3, messages=messages)
out["nonstream"] = {
    "type": msg.type,
    "text": "".join(b.text for b in msg.content if b.type == "text"),
    "stop_reason": msg.stop_reason,
    "output_tokens": msg.usage.output_tokens,
}


def error_of(call):
    try:
        call()
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"class": type(e).__name__, "status": e.status_code, "type": body.get("error", {}).get("type")}
    except anthropic.APIError as e:
        return {"class": type(e).__name__, "status": None, "type": None}
    except Exception as e:  # a reset stream surfaces as a transport error
        return {"class": type(e).__name__, "status": None}
    return None


def consume(**kw):
    with client.messages.stream(model=model, max_tokens=100, messages=messages, **kw) as s:
        for _ in s:
            pass


out["unknown_model"] = error_of(lambda: client.messages.create(model="no-such-model", max_tokens=5, messages=messages))
out["unsupported"] = error_of(lambda: client.messages.create(
    model=model, max_tokens=5, messages=messages,
    tools=[{"type": "web_search_20250305", "name": "web_search"}]))
out["rate_limited"] = error_of(lambda: client.messages.create(
    model=model, max_tokens=5, messages=messages, extra_headers={"x-fakellm-fail": "429"}))
out["midstream"] = error_of(lambda: consume(extra_headers={"x-fakellm-fail": "midstream"}))
print(json.dumps(out))
