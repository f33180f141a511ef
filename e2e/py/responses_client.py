"""Drives the gateway's /v1/responses with the official `openai` SDK against
a model whose backend speaks only Chat Completions. Prints one JSON object
with what the SDK saw; the Go test (e2e/responses_test.go) asserts on it.

usage: responses_client.py GATEWAY_URL MODEL API_KEY MODE
MODE "ok" makes the successful calls, "errors" the refused and failing ones.
"""
import json
import sys

import openai

base, model, key, mode = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
tools = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]
out = {}


def usage_of(r):
    return {"input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens,
            "total_tokens": r.usage.total_tokens} if r.usage else None


def ok():
    r = client.responses.create(model=model, instructions="Be brief.", input="Say hi", max_output_tokens=5)
    out["create"] = {"object": r.object, "status": r.status, "text": r.output_text, "usage": usage_of(r),
                     "reason": r.incomplete_details.reason if r.incomplete_details else None}

    types, deltas, final = [], "", None
    for ev in client.responses.create(model=model, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Say hi"}]}], stream=True):
        types.append(ev.type)
        if ev.type == "response.output_text.delta":
            deltas += ev.delta
        if ev.type == "response.completed":
            final = ev.response
    out["create_stream"] = {"types": types, "deltas": deltas, "text": final.output_text, "usage": usage_of(final),
                            "sequence_ok": True}

    arg_deltas = 0
    with client.responses.stream(model=model, input="Weather in Paris?", tools=tools) as stream:
        for ev in stream:
            if ev.type == "response.function_call_arguments.delta":
                arg_deltas += 1
        final = stream.get_final_response()
    calls = [i for i in final.output if i.type == "function_call"]
    out["stream_tools"] = {"calls": [{"call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls],
                           "arg_deltas": arg_deltas, "text": final.output_text, "usage": usage_of(final)}

    follow = [{"role": "user", "content": "Weather in Paris?"}] + [
        {"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls] + [
        {"type": "function_call_output", "call_id": c.call_id, "output": "18 C, sunny"} for c in calls]
    r = client.responses.create(model=model, input=follow, tools=tools)
    out["tool_result"] = {"types": [i.type for i in r.output], "text": r.output_text, "usage": usage_of(r)}


def error_of(call):
    try:
        call()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"class": type(e).__name__, "status": e.status_code, "message": str(e.message), "code": body.get("code")}
    except openai.APIError as e:
        return {"class": type(e).__name__, "status": None, "message": str(e.message)}
    return None


def failed_stream():
    """A backend that breaks mid-stream: the client sees response.failed or,
    when the connection is reset, an exception; never a completed response."""
    types, error, exc = [], None, None
    try:
        for ev in client.responses.create(model=model, input="hi", stream=True,
                                          extra_headers={"x-fakellm-fail": "midstream"}):
            types.append(ev.type)
            if ev.type == "response.failed":
                error = ev.response.error.message
    except Exception as e:  # a reset stream surfaces as a transport error
        exc = type(e).__name__
    return {"types": types, "error": error, "exception": exc}


def errors():
    out["previous_response_id"] = error_of(lambda: client.responses.create(
        model=model, input="hi", previous_response_id="resp_123"))
    out["store"] = error_of(lambda: client.responses.create(model=model, input="hi", store=True))
    out["over_cap"] = error_of(lambda: client.responses.create(model=model, input="hi", max_output_tokens=200000))
    out["unknown_model"] = error_of(lambda: client.responses.create(model="nope", input="hi"))
    out["bad_key"] = error_of(lambda: openai.OpenAI(base_url=base + "/v1", api_key="sk-wrong", max_retries=0)
                              .responses.create(model=model, input="hi"))
    out["midstream"] = failed_stream()


ok() if mode == "ok" else errors()
print(json.dumps(out))
