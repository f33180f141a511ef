"""Retrieval through the gateway, one endpoint and one key: embed passages
(OpenAI embeddings API), store them in Chroma (chromadb client, the
gateway's /chroma/ service), embed a question, retrieve the nearest
passage, and ask the chat model with it as context.

usage: rag.py [GATEWAY_URL [API_KEY]] [--json]
Defaults: http://127.0.0.1:10000 and the demo key of examples/rag/streamgate.yaml.
With --json it prints one JSON object (the e2e test reads it) instead of prose.

The demo's fake model (examples/fakellm) gives each text a hash-derived
vector and answers with placeholder tokens: the nearest passage is
deterministic but not semantic, and the answer does not read the context;
the usage shows the context was sent. A real embedding and chat model make
the same calls meaningful.
"""
import json
import sys
import uuid

import chromadb
from chromadb.config import Settings
from openai import OpenAI

args = [a for a in sys.argv[1:] if a != "--json"]
as_json = "--json" in sys.argv[1:]
gateway = args[0] if args else "http://127.0.0.1:10000"
key = args[1] if len(args) > 1 else "sk-demo-rag-0f3a9c"

PASSAGES = [
    "Streamgate puts Envoy in front of model servers and vector databases.",
    "Chroma stores embeddings and returns the nearest ones to a query.",
    "A tenant's API key works for every model and service it is granted.",
]
QUESTION = "What does Chroma do?"

llm = OpenAI(base_url=gateway + "/v1", api_key=key)
vectors = llm.embeddings.create(model="embed-demo", input=PASSAGES + [QUESTION])
passage_vecs = [d.embedding for d in vectors.data[:-1]]
question_vec = vectors.data[-1].embedding

chroma = chromadb.HttpClient(host=gateway + "/chroma", headers={"Authorization": "Bearer " + key},
                             settings=Settings(anonymized_telemetry=False))
collection = chroma.get_or_create_collection("rag-demo-" + uuid.uuid4().hex[:8], embedding_function=None)
collection.add(ids=[str(i) for i in range(len(PASSAGES))], embeddings=passage_vecs, documents=PASSAGES)
hits = collection.query(query_embeddings=[question_vec], n_results=1)
context = hits["documents"][0][0]

bare = llm.chat.completions.create(model="gpt-demo", max_tokens=8,
                                   messages=[{"role": "user", "content": QUESTION}])
answer = llm.chat.completions.create(model="gpt-demo", max_tokens=8, messages=[
    {"role": "system", "content": "Answer from this context only:\n" + context},
    {"role": "user", "content": QUESTION},
])
chroma.delete_collection(collection.name)

out = {
    "embedding_model": vectors.model, "dimensions": len(question_vec), "embedding_tokens": vectors.usage.prompt_tokens,
    "stored": collection.name, "count": len(PASSAGES), "retrieved": context, "passages": PASSAGES,
    "answer": answer.choices[0].message.content,
    "prompt_tokens_with_context": answer.usage.prompt_tokens, "prompt_tokens_without": bare.usage.prompt_tokens,
}
if as_json:
    print(json.dumps(out))
else:
    print("1. embeddings  POST %s/v1/embeddings: %d texts -> %d-dim vectors (%d tokens)"
          % (gateway, len(PASSAGES) + 1, out["dimensions"], out["embedding_tokens"]))
    print("2. store       Chroma via %s/chroma: %d passages in collection %s" % (gateway, out["count"], out["stored"]))
    print("3. retrieve    nearest to %r: %r" % (QUESTION, context))
    print("4. chat        POST %s/v1/chat/completions with the passage as context (%d prompt tokens, %d without): %r"
          % (gateway, out["prompt_tokens_with_context"], out["prompt_tokens_without"], out["answer"]))
