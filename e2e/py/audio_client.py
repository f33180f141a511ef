"""Drives the gateway's Audio API with the official `openai` SDK, unmodified.
Prints one JSON object with what the SDK saw; the Go test (e2e/audio_test.go)
asserts on it.

usage: audio_client.py GATEWAY_URL API_KEY MODE
MODE "ok" makes the successful calls, "errors" the refused ones the SDK can
send (an unknown model, an upload over the gateway's cap).
"""
import json
import os
import sys
import tempfile
import time

import openai

base, key, mode = sys.argv[1:4]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
tmp = tempfile.mkdtemp()
out = {}


def audio_file(name, size):
    """A WAV-named file whose bytes carry a marker the gateway must never log."""
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        body = b"RIFF\x00\x00\x00\x00WAVE" + b"AUDIO-SECRET-BYTES" * (size // 18 + 1)
        f.write(body[:size])
    return path


def usage_of(u):
    return u.model_dump() if u is not None else None


def ok():
    path = audio_file("speech.wav", 64000)
    with open(path, "rb") as f:
        r = client.audio.transcriptions.create(model="transcribe", file=f, prompt="names: Ada, Grace")
    out["transcription"] = {"text": r.text, "usage": usage_of(r.usage)}

    with open(path, "rb") as f:
        types, deltas, done = [], "", None
        for ev in client.audio.transcriptions.create(model="transcribe", file=f, stream=True):
            types.append(ev.type)
            if ev.type == "transcript.text.delta":
                deltas += ev.delta
            if ev.type == "transcript.text.done":
                done = ev
    out["transcription_stream"] = {"types": types, "deltas": deltas, "text": done.text, "usage": usage_of(done.usage)}

    with open(path, "rb") as f:
        r = client.audio.translations.create(model="whisper", file=f)
    out["translation"] = {"text": r.text}

    with open(path, "rb") as f:
        r = client.audio.transcriptions.create(model="whisper", file=f, response_format="text")
    out["transcription_text"] = r if isinstance(r, str) else str(r)

    target = os.path.join(tmp, "out.wav")
    start = time.monotonic()
    first = None
    with client.audio.speech.with_streaming_response.create(
            model="tts", voice="alloy", input="Hello from the gateway.", response_format="wav",
            extra_headers={"x-fakellm-itl-ms": "300"}) as resp:
        with open(target, "wb") as f:
            chunks = 0
            for chunk in resp.iter_bytes():
                if first is None:
                    first = time.monotonic() - start
                chunks += 1
                f.write(chunk)
        content_type = resp.headers.get("content-type")
    total = time.monotonic() - start
    with open(target, "rb") as f:
        data = f.read()
    out["speech"] = {"bytes": len(data), "riff": data[:4].decode(), "wave": data[8:12].decode(),
                     "content_type": content_type, "first_s": first, "total_s": total, "chunks": chunks}

    resp = client.audio.speech.with_streaming_response.create(model="tts", voice="alloy", input="Hi", response_format="pcm")
    with resp as r:
        r.stream_to_file(os.path.join(tmp, "out.pcm"))
    out["speech_pcm"] = {"bytes": os.path.getsize(os.path.join(tmp, "out.pcm"))}


def error_of(fn):
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"class": type(e).__name__, "status": e.status_code, "type": body.get("type"),
                "code": body.get("code"), "message": body.get("message")}
    return {"class": None}


def errors():
    path = audio_file("speech.wav", 1000)
    with open(path, "rb") as f:
        out["unknown_model"] = error_of(lambda: client.audio.transcriptions.create(model="nope", file=f))
    big = audio_file("big.wav", 3 << 20)
    with open(big, "rb") as f:
        out["too_large"] = error_of(lambda: client.audio.transcriptions.create(model="transcribe", file=f))
    out["speech_unknown_model"] = error_of(
        lambda: client.audio.speech.create(model="nope", voice="alloy", input="hi"))
    out["speech_unsupported"] = error_of(
        lambda: client.audio.speech.create(model="claude", voice="alloy", input="hi"))


{"ok": ok, "errors": errors}[mode]()
print(json.dumps(out))
