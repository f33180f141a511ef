"""Drives Milvus Lite mounted on the gateway as a gRPC service with the
official `pymilvus` client (MilvusClient over gRPC). Prints one JSON object
with what the client saw; the Go test (e2e/services_milvus_test.go) asserts
on it.

usage: milvus_client.py GATEWAY_URL WRITER_KEY READER_KEY
GATEWAY_URL is the gateway's plain-HTTP URL (http://host:port): pymilvus
speaks gRPC (HTTP/2 cleartext) to it. The key is MilvusClient's token:
pymilvus sends it as `authorization: base64(token)` metadata, which the
gateway reads as the API key on gRPC service calls. The writer's tenant is
"acme" (every method), the reader's "beta" (read methods only).
"""
import json
import sys

import grpc
from pymilvus import MilvusClient

gateway, writer_key, reader_key = sys.argv[1:4]
out = {}


def grpc_status(e):
    """The gRPC status of an error or of the RpcError it was raised from
    (pymilvus wraps a refused connect in a MilvusException)."""
    while e is not None:
        if isinstance(e, grpc.RpcError):
            return {"status": e.code().name, "details": e.details()}
        e = e.__cause__
    return {"status": None, "details": None}


def attempt(name, fn):
    try:
        out[name] = {"ok": fn()}
    except Exception as e:  # MilvusException or the grpc.RpcError itself
        out[name] = {"error": dict(grpc_status(e), message=str(e))}


writer = MilvusClient(uri=gateway, token=writer_key, timeout=20)
writer.create_collection("docs", dimension=2)
out["insert"] = writer.insert("docs", [
    {"id": 1, "vector": [1.0, 0.0], "text": "apples are red"},
    {"id": 2, "vector": [0.0, 1.0], "text": "the sky is blue"},
])["insert_count"]
hits = writer.search("docs", data=[[0.9, 0.1]], limit=1, output_fields=["text"])
out["writer_search"] = [[{"id": h["id"], "text": h["entity"]["text"]} for h in q] for q in hits]

reader = MilvusClient(uri=gateway, token=reader_key, timeout=20)
hits = reader.search("docs", data=[[0.1, 0.9]], limit=1, output_fields=["text"])
out["reader_search"] = [[h["entity"]["text"] for h in q] for q in hits]
out["reader_query"] = [r["text"] for r in reader.query("docs", filter="id == 1", output_fields=["text"])]
attempt("reader_insert", lambda: reader.insert("docs", [{"id": 3, "vector": [1.0, 1.0], "text": "nope"}])["insert_count"])
attempt("reader_create", lambda: reader.create_collection("beta_docs", dimension=2))
attempt("no_key", lambda: MilvusClient(uri=gateway, timeout=5).list_collections())
attempt("wrong_key", lambda: MilvusClient(uri=gateway, token="sk-not-a-key", timeout=5).list_collections())
attempt("user_password", lambda: MilvusClient(uri=gateway, user="root", password=writer_key, timeout=5).list_collections())
out["count"] = writer.query("docs", filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"]
print(json.dumps(out))
