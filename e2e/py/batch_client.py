"""Drives the gateway's Batch API (/v1/files, /v1/batches) with the official
`openai` SDK, unmodified. Prints one JSON object with what the SDK saw; the
Go test (e2e/batch_test.go) asserts on it.

usage: batch_client.py GATEWAY_URL KEY OTHER_TENANT_KEY MODEL SLOW_MODEL
"""
import json
import sys
import time

import openai

base, key, other_key, model, slow_model = sys.argv[1:6]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
other = openai.OpenAI(base_url=base + "/v1", api_key=other_key, max_retries=0)
out = {}


def err_of(fn):
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"class": type(e).__name__, "status": e.status_code, "code": body.get("code"), "message": body.get("message")}
    return None


def line(cid, m, text):
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": m, "max_tokens": 8, "messages": [{"role": "user", "content": text}]}})


def wait(batch_id, done=("completed", "failed", "cancelled", "expired"), limit=20):
    end = time.time() + limit
    seen = []
    while True:
        b = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != b.status:
            seen.append(b.status)
        if b.status in done or time.time() > end:
            return b, seen
        time.sleep(0.1)


def lines_of(file_id):
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines() if x.strip()]


# A batch of three lines, one of which names a model the gateway does not serve.
data = "\n".join([line("ok-1", model, "hello"), line("bad-model", "no-such-model", "hi"), line("ok-2", model, "world")]) + "\n"
f = client.files.create(file=("requests.jsonl", data.encode()), purpose="batch")
out["file"] = {"id": f.id, "purpose": f.purpose, "bytes": f.bytes, "filename": f.filename, "status": f.status}
b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "e2e"})
out["created"] = {"status": b.status, "endpoint": b.endpoint, "metadata": b.metadata}
b, seen = wait(b.id)
out["batch"] = {"id": b.id, "status": b.status, "seen": seen, "counts": b.request_counts.model_dump(),
                "in_progress_at": b.in_progress_at, "finalizing_at": b.finalizing_at, "completed_at": b.completed_at,
                "output_file_id": b.output_file_id, "error_file_id": b.error_file_id}
out["output"] = lines_of(b.output_file_id) if b.output_file_id else []
out["errors"] = lines_of(b.error_file_id) if b.error_file_id else []

# Another tenant sees none of it.
out["other_retrieve"] = err_of(lambda: other.batches.retrieve(b.id))
out["other_content"] = err_of(lambda: other.files.content(f.id))
out["other_cancel"] = err_of(lambda: other.batches.cancel(b.id))
out["other_list"] = len(other.batches.list().data)

# A slow batch, cancelled while its lines run.
slow = "\n".join(line("slow-%d" % i, slow_model, "slow") for i in range(6)) + "\n"
sf = client.files.create(file=("slow.jsonl", slow.encode()), purpose="batch")
sb = client.batches.create(input_file_id=sf.id, endpoint="/v1/chat/completions", completion_window="24h")
time.sleep(0.3)
c = client.batches.cancel(sb.id)
out["cancel_status"] = c.status
sb, seen = wait(sb.id)
out["cancelled"] = {"status": sb.status, "seen": seen, "cancelling_at": sb.cancelling_at, "cancelled_at": sb.cancelled_at,
                    "counts": sb.request_counts.model_dump()}

# Listing pages newest first.
page = client.batches.list(limit=1)
out["list"] = {"ids": [x.id for x in page.data], "has_more": page.has_more}
page2 = client.batches.list(limit=1, after=page.data[0].id)
out["list2"] = {"ids": [x.id for x in page2.data], "has_more": page2.has_more}
out["files"] = sorted(x.id for x in client.files.list(purpose="batch").data)

# Bad input: the line number in a 400.
out["bad_upload"] = err_of(lambda: client.files.create(file=("bad.jsonl", (line("a", model, "x") + "\n{oops\n").encode()), purpose="batch"))
out["unknown_batch"] = err_of(lambda: client.batches.retrieve("batch_nope"))
out["deleted"] = client.files.delete(f.id).deleted
out["after_delete"] = err_of(lambda: client.files.retrieve(f.id))
print(json.dumps(out))
