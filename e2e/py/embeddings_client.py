"""Drives the gateway's /v1/embeddings and /v1/models with the official
`openai` SDK. Prints one JSON object with what the SDK saw; the Go test
(e2e/embeddings_test.go) asserts on it.

usage: embeddings_client.py GATEWAY_URL API_KEY MODEL...
For each model: the SDK's default call (it asks for base64 and decodes it),
encoding_format="float", the raw wire answer of the default call, token-id
input, and the bad inputs. Then client.models.list() and a chat-only model.
"""
import json
import sys

import openai

base, key, models = sys.argv[1], sys.argv[2], sys.argv[3:]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
out = {}


def err_of(e):
    body = e.body if isinstance(e.body, dict) else {}
    return {"class": type(e).__name__, "status": e.status_code, "code": body.get("code"), "message": body.get("message")}


def listing(r):
    return {"model": r.model, "object": r.object, "usage": {"prompt_tokens": r.usage.prompt_tokens, "total_tokens": r.usage.total_tokens},
            "data": [{"object": d.object, "index": d.index, "embedding": d.embedding} for d in r.data]}


def attempt(fn):
    try:
        return {"ok": listing(fn())}
    except openai.APIStatusError as e:
        return {"error": err_of(e)}


for model in models:
    m = {}
    m["default"] = attempt(lambda: client.embeddings.create(model=model, input=["hello world!", "other"]))
    m["float"] = attempt(lambda: client.embeddings.create(model=model, input="hello world!", encoding_format="float"))
    raw = client.embeddings.with_raw_response.create(model=model, input="hello world!")
    m["wire_default"] = json.loads(raw.http_response.text)
    m["tokens"] = attempt(lambda: client.embeddings.create(model=model, input=[[1, 2, 3], [4]], encoding_format="float"))
    m["empty_list"] = attempt(lambda: client.embeddings.create(model=model, input=[]))
    m["empty_string"] = attempt(lambda: client.embeddings.create(model=model, input=""))
    m["mixed"] = attempt(lambda: client.embeddings.create(model=model, input=["a", [1, 2]]))
    out[model] = m

out["models"] = [{"id": x.id, "object": x.object, "streamgate": (x.model_extra or {}).get("streamgate")} for x in client.models.list()]
out["chat_only"] = attempt(lambda: client.embeddings.create(model="chat-only", input="hello"))
print(json.dumps(out))
