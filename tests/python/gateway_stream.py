"""Streaming with the official OpenAI Python SDK against the gateway of `llm-router up --sim`
started with `--sim-chunk-delay-ms 100` (the sim then sends one word every 100 ms).

Env: GATEWAY_URL (http://host:port of the gateway), GATEWAY_KEY (a key it accepts).
One PASS/FAIL line per check.
"""

import os
import time

import openai

from interop import check, expect, run

BASE_URL = os.environ["GATEWAY_URL"] + "/v1"
KEY = os.environ["GATEWAY_KEY"]
# The sim cuts a stream whose prompt holds this marker (see SimConfig in src/sim/mod.rs).
MID_STREAM_ERROR = "[sim:mid-stream-error]"
PROMPT = "one two three four five six seven"

client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=30)


def stream(model, text):
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )


def timed(model, text):
    """(seconds since the request was sent, chunk) for every chunk, as it arrives."""
    started = time.monotonic()
    return [(time.monotonic() - started, chunk) for chunk in stream(model, text)]


def text_of(arrivals):
    return "".join(
        c.choices[0].delta.content or "" for _, c in arrivals if c.choices
    )


@check
def stream_arrives_chunk_by_chunk():
    arrivals = timed("openai", PROMPT)
    with_text = [(t, c) for t, c in arrivals if c.choices and c.choices[0].delta.content]
    print(
        "openai (stream): "
        + " | ".join(f"{t:.2f}s {c.choices[0].delta.content!r}" for t, c in with_text),
        flush=True,
    )
    expect(len(with_text) >= 5, f"only {len(with_text)} chunks with text")
    expect(text_of(arrivals) == f"sim: {PROMPT}", text_of(arrivals))
    first, last = with_text[0][0], with_text[-1][0]
    expect(
        first < 0.3 and last - first >= 0.5,
        f"not incremental: first chunk at {first:.2f}s, last at {last:.2f}s",
    )
    expect(all(c.object == "chat.completion.chunk" for _, c in arrivals), "not chunks")
    finish = [c.choices[0].finish_reason for _, c in arrivals if c.choices]
    expect(finish[-1] == "stop", finish)
    usage = [c.usage for _, c in arrivals if c.usage]
    expect(usage and usage[-1].completion_tokens == 8, usage)


@check
def claude_route_streams_too():
    arrivals = timed("claude", PROMPT)
    expect(text_of(arrivals) == f"sim: {PROMPT}", text_of(arrivals))
    expect(len(arrivals) >= 5, f"only {len(arrivals)} chunks")


@check
def pinned_model_streams_from_its_target():
    arrivals = timed("openai/gpt-4.1-mini", "pin me")
    models = {c.model for _, c in arrivals}
    expect(models == {"gpt-4.1-mini"}, models)


@check
def mid_stream_failure_raises_api_error():
    got = []
    try:
        for chunk in stream("openai", f"{PROMPT} {MID_STREAM_ERROR}"):
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    except openai.APIError as e:
        expect(got, "the error came before any chunk")
        expect("mid-stream" in e.message, e.message)
        expect(f"sim: {PROMPT}".startswith("".join(got)), got)
        print(f"openai (mid-stream error after {len(got)} chunks): {e.message}", flush=True)
        return
    raise AssertionError(f"no openai.APIError; chunks: {got}")


@check
def stream_failing_before_the_first_chunk_is_a_typed_error():
    try:
        stream("openai/no-such-model", PROMPT)
    except openai.NotFoundError as e:
        expect(e.status_code == 404, e.status_code)
        return
    raise AssertionError("no openai.NotFoundError")


if __name__ == "__main__":
    run("gateway_stream")
