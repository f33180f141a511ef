"""Drives the gateway with the official `openai` SDK against models whose
backends are (the fake) Google Gemini: the Gemini API by API key and Vertex
AI by service-account OAuth2 token. Prints one JSON object per model and
the wrong-key model's error; e2e/gemini_test.go asserts on it.

usage: gemini_client.py GATEWAY_URL BAD_KEY_MODEL MODEL...
"""
import json
import sys

import anthropic
import openai

base, bad, models = sys.argv[1], sys.argv[2], sys.argv[3:]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
question = [{"role": "user", "content": "Weather in Paris?"}]


def error_of(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code, "message": str(e.message)}
    except openai.APIError as e:
        return {"class": type(e).__name__, "status": None, "message": str(e.message)}
    return None


def ask(model, text):
    return lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


out = {"bad_key": error_of(ask(bad, "hi"))}
for model in models:
    with client.chat.completions.stream(model=model, messages=question, tools=tools,
                                        stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    answer = client.chat.completions.create(model=model, tools=tools, messages=question + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(include={"id", "type", "function"})]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}])
    out[model] = {
        "stream_finish": final.choices[0].finish_reason,
        "stream_content": final.choices[0].message.content,
        "stream_tool": call.function.name,
        "stream_tool_args": call.function.arguments,
        "prompt_tokens": final.usage.prompt_tokens,
        "completion_tokens": final.usage.completion_tokens,
        "cached_tokens": final.usage.prompt_tokens_details.cached_tokens if final.usage.prompt_tokens_details else None,
        "answer": answer.choices[0].message.content,
        "answer_finish": answer.choices[0].finish_reason,
        "rate_limited": error_of(ask(model, "fake:rate-limit")),
        "invalid": error_of(ask(model, "fake:invalid")),
    }
# The anthropic SDK streams a tool use; the openai SDK's Responses API
# streams one too (translated through Chat Completions) from the first model.
model = models[0]
ant = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
with ant.messages.stream(model=model, max_tokens=100, messages=question,
                         tools=[{"name": "get_weather", "input_schema": tools[0]["function"]["parameters"]}]) as stream:
    events = [ev.type for ev in stream]
    msg = stream.get_final_message()
out["messages"] = {
    "events": events, "stop_reason": msg.stop_reason,
    "text": "".join(b.text for b in msg.content if b.type == "text"),
    "tool_input": [b.input for b in msg.content if b.type == "tool_use"],
    "input_tokens": msg.usage.input_tokens, "cache_read_input_tokens": msg.usage.cache_read_input_tokens,
    "output_tokens": msg.usage.output_tokens,
}
calls = []
with client.responses.stream(model=model, input="Weather in Paris?", tools=[{
        "type": "function", "name": "get_weather", "parameters": tools[0]["function"]["parameters"]}]) as stream:
    for _ in stream:
        pass
    resp = stream.get_final_response()
out["responses"] = {
    "status": resp.status,
    "calls": [{"name": o.name, "arguments": o.arguments} for o in resp.output if o.type == "function_call"],
    "input_tokens": resp.usage.input_tokens, "output_tokens": resp.usage.output_tokens,
}
print(json.dumps(out))
