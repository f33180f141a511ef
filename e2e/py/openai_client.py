"""Drives the gateway with the official `openai` SDK against a model whose
backend speaks Anthropic Messages. Prints one JSON object with what the SDK
saw; the Go test (e2e/translate_test.go) asserts on it.

usage: openai_client.py GATEWAY_URL MODEL
"""
import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                       "required": ["city"]},
    },
}]
messages = [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "Weather in Paris?"}]
out = {}

# Streaming, through the SDK's accumulating stream helper: it checks every
# chunk's shape and joins tool-call argument pieces.
arg_deltas = 0
content_deltas = 0
with client.chat.completions.stream(model=model, messages=messages, tools=tools,
                                    stream_options={"include_usage": True}) as stream:
    for event in stream:
        if event.type == "tool_calls.function.arguments.delta":
            arg_deltas += 1
        elif event.type == "content.delta":
            content_deltas += 1
    final = stream.get_final_completion()
choice = final.choices[0]
out["stream"] = {
    "content": choice.message.content,
    "finish_reason": choice.finish_reason,
    "tool_calls": [{"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
                   for tc in choice.message.tool_calls or []],
    "argument_deltas": arg_deltas,
    "content_deltas": content_deltas,
    "completion_tokens": final.usage.completion_tokens if final.usage else None,
    "model": final.model,
}

# A follow-up turn carrying the tool result: the backend answers with text.
follow = messages + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": out["stream"]["tool_calls"][0]["id"], "type": "function",
         "function": {"name": "get_weather", "arguments": out["stream"]["tool_calls"][0]["arguments"]}}]},
    {"role": "tool", "tool_call_id": out["stream"]["tool_calls"][0]["id"], "content": "18 C, sunny"},
]
resp = client.chat.completions.create(model=model, messages=follow, tools=tools, max_tokens=4)
out["nonstream"] = {
    "content": resp.choices[0].message.content,
    "finish_reason": resp.choices[0].finish_reason,
    "tool_calls": len(resp.choices[0].message.tool_calls or []),
    "prompt_tokens": resp.usage.prompt_tokens,
    "completion_tokens": resp.usage.completion_tokens,
}


def error_of(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code, "message": str(e.message)}
    except openai.APIError as e:
        return {"class": type(e).__name__, "status": None, "message": str(e.message)}
    except Exception as e:  # a reset stream surfaces as a transport error
        return {"class": type(e).__name__, "status": None}
    return None


def consume(**kw):
    for _ in client.chat.completions.create(model=model, messages=messages, stream=True, **kw):
        pass


out["unsupported"] = error_of(lambda: client.chat.completions.create(model=model, messages=messages, n=2))
out["overloaded"] = error_of(lambda: client.chat.completions.create(
    model=model, messages=messages, extra_headers={"x-fakellm-fail": "529"}))
out["midstream"] = error_of(lambda: consume(extra_headers={"x-fakellm-fail": "midstream"}))
print(json.dumps(out))
