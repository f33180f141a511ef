"""Drives the gateway's /v1/images endpoints with the official `openai` SDK,
unmodified. Prints one JSON object with what the SDK saw; the Go test
(e2e/images_test.go) asserts on it.

usage: images_client.py GATEWAY_URL MODEL API_KEY MODE
MODE "ok" makes the successful calls, "errors" the refused and failing ones.
"""
import base64
import json
import sys

import openai

base, model, key, mode = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
out = {}


def usage_of(u):
    return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.total_tokens} if u else None


def png_ok(b64):
    return base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"


def ok():
    r = client.images.generate(model=model, prompt="a lighthouse at dusk", n=2, size="1024x1024")
    out["generate"] = {"count": len(r.data), "png": all(png_ok(d.b64_json) for d in r.data), "size": r.size,
                       "quality": r.quality, "usage": usage_of(r.usage)}

    r = client.images.generate(model=model, prompt="a lighthouse at dusk", response_format="url", size="1792x1024")
    out["url"] = {"urls": [d.url for d in r.data], "usage": usage_of(r.usage)}

    types, final = [], None
    for ev in client.images.generate(model=model, prompt="a lighthouse at dusk", stream=True, partial_images=2,
                                     size="1024x1024", quality="low"):
        types.append(ev.type)
        if ev.type == "image_generation.completed":
            final = ev
    out["stream"] = {"types": types, "png": png_ok(final.b64_json), "usage": usage_of(final.usage)}


def error_of(call):
    try:
        call()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"class": type(e).__name__, "status": e.status_code, "message": str(e.message),
                "code": body.get("code"), "param": body.get("param")}
    except openai.APIError as e:
        return {"class": type(e).__name__, "status": None, "message": str(e.message)}
    return None


def errors():
    out["bad_size"] = error_of(lambda: client.images.generate(model=model, prompt="p", size="1000x1000"))
    out["missing_model"] = error_of(lambda: client.images.generate(prompt="p"))
    out["unknown_model"] = error_of(lambda: client.images.generate(model="no-such-model", prompt="p"))
    out["other_backend"] = error_of(lambda: client.images.generate(model="chat-only", prompt="p"))
    out["long_prompt"] = error_of(lambda: client.images.generate(model=model, prompt="word " * 400))


{"ok": ok, "errors": errors}[mode]()
print(json.dumps(out))
