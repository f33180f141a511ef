"""Drives the gateway with the official `openai` SDK against models whose
backends are (the fake) Azure OpenAI, by api-key and by Entra ID token.
Prints one JSON object per model; e2e/azure_test.go asserts on it.

usage: azure_client.py GATEWAY_URL MODEL...
"""
import json
import sys

import openai

base, models = sys.argv[1], sys.argv[2:]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
out = {}
for model in models:
    with client.chat.completions.stream(model=model, messages=[{"role": "user", "content": "Weather?"}], tools=tools,
                                        stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    emb = client.embeddings.create(model=model, input="hello")
    out[model] = {
        "stream_finish": final.choices[0].finish_reason,
        "stream_tool": (final.choices[0].message.tool_calls or [None])[0] and final.choices[0].message.tool_calls[0].function.name,
        "stream_completion_tokens": final.usage.completion_tokens if final.usage else None,
        "content": resp.choices[0].message.content,
        "embedding_len": len(emb.data[0].embedding),
    }
print(json.dumps(out))
