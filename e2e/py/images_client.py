"""Drives the gateway's /v1/images endpoints with the official `openai` SDK,
unmodified. Prints one JSON object with what the SDK saw; the Go test
(e2e/images_test.go) asserts on it.

usage: images_client.py GATEWAY_URL MODEL API_KEY MODE [PNG_PATH]
MODE "ok" makes the successful generations, "errors" the refused and failing
ones, "edit" the edits of the PNG at PNG_PATH (and their errors).
"""
import base64
import json
import sys

import openai

base, model, key, mode = sys.argv[1:5]
png_path = sys.argv[5] if len(sys.argv) > 5 else None
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


def edit():
    with open(png_path, "rb") as a, open(png_path, "rb") as b:
        r = client.images.edit(model=model, image=[a, b], prompt="add a red hat", n=2, size="1024x1024", quality="high")
    out["edit"] = {"count": len(r.data), "png": all(png_ok(d.b64_json) for d in r.data), "size": r.size,
                   "usage": usage_of(r.usage)}

    types, final = [], None
    with open(png_path, "rb") as a:
        for ev in client.images.edit(model=model, image=a, prompt="add a red hat", stream=True, partial_images=1):
            types.append(ev.type)
            if ev.type == "image_edit.completed":
                final = ev
    out["edit_stream"] = {"types": types, "png": png_ok(final.b64_json), "usage": usage_of(final.usage)}

    out["not_an_image"] = error_of(lambda: client.images.edit(
        model=model, image=("notes.png", b"these are not image bytes", "image/png"), prompt="p"))
    with open(png_path, "rb") as a:
        out["edit_missing_model"] = error_of(lambda: client.images.edit(image=a, prompt="p"))
    with open(png_path, "rb") as a:
        out["edit_unknown_model"] = error_of(lambda: client.images.edit(model="no-such-model", image=a, prompt="p"))
    out["too_large"] = error_of(lambda: client.images.edit(
        model=model, image=("big.png", open(png_path, "rb").read() + b"\0" * (2 << 20), "image/png"), prompt="p"))


{"ok": ok, "errors": errors, "edit": edit}[mode]()
print(json.dumps(out))
