"""Drives a Chroma service mounted on the gateway with the official
`chromadb` client (HttpClient). Prints one JSON object with what the client
saw; the Go test (e2e/services_test.go) asserts on it.

usage: chroma_client.py BASE_URL WRITER_KEY READER_KEY
BASE_URL is the gateway's URL with the service's prefix (http://host:port/chroma).
The writer's tenant is "acme" (it may create, add and query), the reader's
"beta" (it may only read); each owns the Chroma tenant of its own name.
"""
import json
import sys

import chromadb
from chromadb.config import Settings

base, writer_key, reader_key = sys.argv[1:4]
out = {}


def client(key, tenant):
    headers = {"Authorization": "Bearer " + key} if key else {}
    return chromadb.HttpClient(host=base, headers=headers, tenant=tenant, database="default_database",
                               settings=Settings(anonymized_telemetry=False))


def refusal(e):
    """The gateway's JSON error, from the exception the client raised."""
    try:
        body = json.loads(str(e))
        return {"code": body["error"]["code"], "message": body["error"]["message"]}
    except Exception:
        return {"code": None, "message": str(e)}


def attempt(name, fn):
    try:
        out[name] = {"ok": fn()}
    except Exception as e:  # the client raises plain exceptions for unknown error shapes
        out[name] = {"error": refusal(e)}


acme = client(writer_key, "acme")
col = acme.get_or_create_collection("acme-docs", embedding_function=None)
col.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], documents=["apples are red", "the sky is blue"])
q = col.query(query_embeddings=[[0.9, 0.1]], n_results=1)
out["writer_query"] = {"ids": q["ids"], "documents": q["documents"], "count": col.count()}
attempt("writer_other_name", lambda: acme.create_collection("beta-stolen", embedding_function=None).name)

beta = client(reader_key, "beta")
notes = beta.get_collection("beta-notes", embedding_function=None)
out["reader_query"] = notes.query(query_embeddings=[[1.0, 0.0]], n_results=1)["ids"]
attempt("reader_add", lambda: notes.add(ids=["x"], embeddings=[[1.0, 0.0]], documents=["nope"]))
attempt("reader_other_tenant", lambda: client(reader_key, "acme").get_collection("acme-docs", embedding_function=None).name)
attempt("reader_other_name", lambda: beta.get_collection("acme-docs", embedding_function=None).name)
attempt("no_key", lambda: client("", "acme").heartbeat())
print(json.dumps(out))
