"""Drives the gateway with the official `openai` or `anthropic` SDK against
a model whose primary backend fails before the first byte and whose
fallback speaks another protocol. Prints one JSON object with what the SDK
saw; the Go test (e2e/crossfailover_test.go) asserts on it.

usage: cross_client.py GATEWAY_URL SDK:MODEL[:FAIL_BACKEND] ...

SDK is openai or anthropic; FAIL_BACKEND, when given, is the fake backend
asked (by header) to answer 500: the primary of the chain. The output maps
each MODEL to what the SDK saw.
"""
import json
import sys

import anthropic
import openai

base = sys.argv[1]


def openai_run(model, headers, out):
    oai = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, default_headers=headers)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    with oai.chat.completions.stream(model=model, messages=messages, tools=tools, max_tokens=50,
                                     stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    calls = choice.message.tool_calls or []
    out["stream"] = {
        "finish_reason": choice.finish_reason,
        "tool_calls": [{"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments} for tc in calls],
        "prompt_tokens": final.usage.prompt_tokens, "completion_tokens": final.usage.completion_tokens,
    }
    follow = messages + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": calls[0].id, "type": "function", "function": {"name": "get_weather", "arguments": calls[0].function.arguments}}]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C, sunny"},
    ]
    resp = oai.chat.completions.with_raw_response.create(model=model, messages=follow, tools=tools, max_tokens=50)
    r = resp.parse()
    out["whole"] = {
        "content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
        "model": r.model, "prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens,
        "headers": {k: v for k, v in resp.headers.items() if k.startswith("x-streamgate") or k.startswith("x-fakellm")},
    }


def anthropic_run(model, headers, out):
    ant = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, default_headers=headers)
    tools = [{"name": "get_weather", "description": "Current weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    with ant.messages.stream(model=model, max_tokens=50, messages=messages, tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    out["stream"] = {
        "stop_reason": final.stop_reason,
        "tool_uses": [{"id": u.id, "name": u.name, "input": u.input} for u in uses],
        "input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens,
    }
    follow = messages + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": uses[0].id, "name": uses[0].name, "input": uses[0].input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C, sunny"}]},
    ]
    r = ant.messages.create(model=model, max_tokens=50, messages=follow, tools=tools)
    out["whole"] = {
        "text": "".join(b.text for b in r.content if b.type == "text"), "stop_reason": r.stop_reason,
        "model": r.model, "input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens,
    }


result = {}
for job in sys.argv[2:]:
    sdk, model, *fail = job.split(":")
    headers = {"x-fakellm-fail": "500", "x-fakellm-fail-backend": fail[0]} if fail else {}
    result[model] = {}
    (openai_run if sdk == "openai" else anthropic_run)(model, headers, result[model])
print(json.dumps(result))
