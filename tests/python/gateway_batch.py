"""The official OpenAI Python SDK's Files and Batches APIs against `llm-router up --sim`.

Env: GATEWAY_URL (http://host:port of the gateway), GATEWAY_KEY (a key it accepts).
One PASS/FAIL line per check.
"""

import io
import json
import os
import time

import openai

from interop import check, expect, run

BASE_URL = os.environ["GATEWAY_URL"] + "/v1"
KEY = os.environ["GATEWAY_KEY"]

client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=60)
FINAL = {"completed", "failed", "cancelled", "expired"}
# Filled by the checks that create batches, read by the later ones.
STATE = {}


def jsonl(n, prefix="req"):
    """`n` chat lines over both routes and a pinned route/model."""
    models = ["openai", "claude", "openai/gpt-4.1-mini"]
    lines = [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": models[i % len(models)],
                "messages": [{"role": "user", "content": f"batch line {i}"}],
            },
        }
        for i in range(n)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def upload(data, name):
    return client.files.create(file=(name, io.BytesIO(data)), purpose="batch")


def wait_final(batch_id, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in FINAL or time.monotonic() > deadline:
            return batch
        time.sleep(0.3)


def lines_of(file_id):
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@check
def files_create_and_retrieve():
    data = jsonl(30)
    f = upload(data, "input.jsonl")
    expect(f.id.startswith("file-"), f.id)
    expect(f.bytes == len(data), (f.bytes, len(data)))
    expect(f.purpose == "batch" and f.filename == "input.jsonl", f)
    again = client.files.retrieve(f.id)
    expect(again.id == f.id and again.bytes == f.bytes, again)
    expect(client.files.content(f.id).content == data, "content differs from the upload")
    STATE["input"] = f.id


@check
def batch_runs_to_completed():
    batch = client.batches.create(
        input_file_id=STATE["input"],
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"suite": "gateway-interop"},
    )
    expect(batch.status in ("validating", "in_progress"), batch.status)
    expect(batch.request_counts.total == 30, batch.request_counts)
    done = wait_final(batch.id)
    print(f"batch {done.id}: {done.status} {done.request_counts}", flush=True)
    expect(done.status == "completed", done)
    expect(done.request_counts.completed == 30, done.request_counts)
    expect(done.metadata == {"suite": "gateway-interop"}, done.metadata)
    STATE["batch"] = done


@check
def output_file_has_every_custom_id_once():
    done = STATE["batch"]
    lines = lines_of(done.output_file_id)
    ids = [line["custom_id"] for line in lines]
    expect(sorted(ids) == sorted(f"req-{i}" for i in range(30)), ids)
    for line in lines:
        body = line["response"]["body"]
        expect(line["response"]["status_code"] == 200, line)
        expect(body["object"] == "chat.completion", body)
        n = line["custom_id"].split("-")[1]
        content = body["choices"][0]["message"]["content"]
        expect(f"batch line {n}" in content, content)
    expect(done.error_file_id is None, done.error_file_id)


@check
def batches_list_newest_first():
    page = client.batches.list(limit=5)
    ids = [b.id for b in page.data]
    expect(STATE["batch"].id in ids, ids)
    created = [b.created_at for b in page.data]
    expect(created == sorted(created, reverse=True), created)


@check
def cancel_a_running_batch():
    f = upload(jsonl(5000, "big"), "big.jsonl")
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    expect(cancelling.status in ("cancelling", "cancelled"), cancelling.status)
    done = wait_final(batch.id, timeout=120)
    counts = done.request_counts
    print(f"batch {done.id}: {done.status} {counts}", flush=True)
    expect(done.status == "cancelled", done.status)
    expect(counts.completed + counts.failed == 5000, counts)
    errors = lines_of(done.error_file_id)
    expect(len(errors) == counts.failed and counts.failed > 0, counts)
    expect(all(e["error"]["code"] == "batch_cancelled" for e in errors), errors[:2])


@check
def unknown_batch_bad_purpose_and_wrong_key_are_typed_errors():
    try:
        client.batches.retrieve("batch_0123456789abcdef0123456789abcdef")
    except openai.NotFoundError as e:
        expect(e.code == "batch_not_found", e.code)
    else:
        raise AssertionError("no NotFoundError for an unknown batch")
    try:
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
    except openai.BadRequestError as e:
        expect(e.param == "purpose", e.param)
    else:
        raise AssertionError("no BadRequestError for purpose fine-tune")
    wrong = openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong", max_retries=0)
    try:
        wrong.batches.list()
    except openai.AuthenticationError as e:
        expect(e.status_code == 401, e.status_code)
    else:
        raise AssertionError("no AuthenticationError for a wrong key")


if __name__ == "__main__":
    run("gateway_batch")
