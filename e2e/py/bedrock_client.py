"""Drives the gateway with the official `openai` and `anthropic` SDKs
against models whose backend is (the fake) AWS Bedrock. Prints one JSON
object with what the SDKs saw; the Go test (e2e/bedrock_test.go) asserts
on it.

usage: bedrock_client.py GATEWAY_URL MODEL BAD_CREDENTIALS_MODEL
"""
import json
import sys

import anthropic
import openai

base, model, bad_model = sys.argv[1], sys.argv[2], sys.argv[3]
oai = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
ant = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]
messages = [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "Weather in Paris?"}]
out = {}


def error_of(call):
    try:
        call()
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return {"class": type(e).__name__, "status": e.status_code, "message": str(e.message)}
    except (openai.APIError, anthropic.APIError) as e:
        return {"class": type(e).__name__, "status": None, "message": str(e.message)}
    return None


# OpenAI SDK, streamed with a tool call, through the accumulating helper.
arg_deltas = 0
with oai.chat.completions.stream(model=model, messages=messages, tools=tools,
                                 stream_options={"include_usage": True}) as stream:
    for event in stream:
        if event.type == "tool_calls.function.arguments.delta":
            arg_deltas += 1
    final = stream.get_final_completion()
choice = final.choices[0]
calls = choice.message.tool_calls or []
out["chat_stream"] = {
    "content": choice.message.content,
    "finish_reason": choice.finish_reason,
    "tool_calls": [{"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments} for tc in calls],
    "argument_deltas": arg_deltas,
    "prompt_tokens": final.usage.prompt_tokens if final.usage else None,
    "completion_tokens": final.usage.completion_tokens if final.usage else None,
}

# The tool result turn, not streamed: the fake answers in text.
follow = messages + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[0].id, "type": "function", "function": {"name": "get_weather", "arguments": calls[0].function.arguments}}]},
    {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C, sunny"},
]
resp = oai.chat.completions.create(model=model, messages=follow, tools=tools, max_tokens=50)
out["chat"] = {
    "content": resp.choices[0].message.content,
    "finish_reason": resp.choices[0].finish_reason,
    "tool_calls": len(resp.choices[0].message.tool_calls or []),
    "prompt_tokens": resp.usage.prompt_tokens,
    "completion_tokens": resp.usage.completion_tokens,
}


def consume(**kw):
    for _ in oai.chat.completions.create(stream=True, **kw):
        pass


out["chat_throttled"] = error_of(lambda: oai.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "fake:throttle"}]))
out["chat_invalid"] = error_of(lambda: oai.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "fake:invalid"}]))
out["chat_midstream"] = error_of(lambda: consume(
    model=model, messages=[{"role": "user", "content": "hello fake:stream-throttle"}]))
out["chat_bad_credentials"] = error_of(lambda: oai.chat.completions.create(
    model=bad_model, messages=[{"role": "user", "content": "hi"}]))

# Anthropic SDK, streamed with a tool call, through MessageStream (which
# rejects out-of-order events).
ant_tools = [{"name": "get_weather", "description": "Current weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
events = []
with ant.messages.stream(model=model, max_tokens=100, system="Be brief.", tools=ant_tools,
                         messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
    for event in stream:
        events.append(event.type)
    msg = stream.get_final_message()
out["messages_stream"] = {
    "events": events,
    "text": "".join(b.text for b in msg.content if b.type == "text"),
    "tool_uses": [{"id": b.id, "name": b.name, "input": b.input} for b in msg.content if b.type == "tool_use"],
    "stop_reason": msg.stop_reason,
    "input_tokens": msg.usage.input_tokens,
    "output_tokens": msg.usage.output_tokens,
}
msg = ant.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "Say hi"}])
out["messages"] = {"text": "".join(b.text for b in msg.content if b.type == "text"), "stop_reason": msg.stop_reason,
                   "output_tokens": msg.usage.output_tokens}
out["messages_throttled"] = error_of(lambda: ant.messages.create(
    model=model, max_tokens=10, messages=[{"role": "user", "content": "fake:throttle"}]))
out["messages_bad_credentials"] = error_of(lambda: ant.messages.create(
    model=bad_model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]))
print(json.dumps(out))
