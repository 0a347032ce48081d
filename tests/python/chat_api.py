"""The whole chat API through the router, with the official OpenAI Python SDK.

scripts/chat-api.sh runs this against `llm-router up` whose routes `gpt` (OpenAI-kind
endpoint, model gpt-sim), `claude` (Anthropic-kind endpoint, model claude-sim) and `embed`
(OpenAI-kind, model embed-sim) all lead to one `llm-router sim-provider`. Besides the
answers, most checks ask the sim what it was sent (GET /sim/last-request) so that what
reached the provider is checked too: passed through unchanged to OpenAI, translated to
Anthropic's Messages API.

Env: GATEWAY_URL (http://host:port of the gateway), SIM_URL (http://host:port of the sim).
One PASS/FAIL line per check, named chat.<route>.<check>.
"""

import base64
import json
import math
import os
import re
import struct
import urllib.error
import urllib.request

import openai
from pydantic import BaseModel

from interop import check, expect, run

GATEWAY_URL = os.environ["GATEWAY_URL"]
SIM_URL = os.environ["SIM_URL"]

# No gateway keys are set in the script; the SDK needs some key all the same.
client = openai.OpenAI(
    base_url=GATEWAY_URL + "/v1", api_key="unused", max_retries=0, timeout=30
)

# The two chat routes: the same checks on an OpenAI-kind and an Anthropic-kind endpoint.
ROUTES = ["gpt", "claude"]
UPSTREAM_MODEL = {"gpt": "gpt-sim", "claude": "claude-sim"}
UPSTREAM_PATH = {"gpt": "/v1/chat/completions", "claude": "/v1/messages"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time in a timezone.",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
            },
        },
    },
]
TOOL_NAMES = {t["function"]["name"] for t in TOOLS}
QUESTION = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
# The tool's result, short enough that the sim's echo (its first 50 characters) holds it.
WEATHER = "Paris: sunny, 21 C"

# The smallest PNG prefix: the router passes it on, nobody decodes it.
IMAGE_B64 = "iVBORw0KGgo="
IMAGE_URL = "data:image/png;base64," + IMAGE_B64


def on_routes(*routes):
    """Registers `fn(route)` as one check per route, named <route>.<fn>."""

    def register(fn):
        for route in routes:

            def one(route=route):
                fn(route)

            one.__name__ = f"{route}.{fn.__name__}"
            check(one)
        return fn

    return register


def chat(route, messages, **kwargs):
    return client.chat.completions.create(model=route, messages=messages, **kwargs)


def expect_raises(error_type, call):
    """Runs `call`, expects `error_type`, returns the exception."""
    try:
        result = call()
    except error_type as e:
        return e
    except openai.APIError as e:
        raise AssertionError(f"expected {error_type.__name__}, got {type(e).__name__}: {e}")
    raise AssertionError(f"expected {error_type.__name__}, got an answer: {result}")


def last_request():
    """(path, body) of the last request the sim got, the body as JSON."""
    # The standard library, not the SDK's HTTP client (its package name changes between
    # SDK versions: httpx, httpx2).
    try:
        with urllib.request.urlopen(f"{SIM_URL}/sim/last-request", timeout=30) as r:
            got = json.load(r)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GET /sim/last-request: HTTP {e.code}: {e.read()[:300]!r}")
    body = got["body"]
    if isinstance(body, str):
        body = json.loads(body)
    return got["path"], body


def upstream(route):
    """The body the sim got for the last call on `route`, its path and model checked."""
    path, body = last_request()
    expect(path == UPSTREAM_PATH[route], f"upstream path {path!r}, not {UPSTREAM_PATH[route]}")
    expect(
        body.get("model") == UPSTREAM_MODEL[route],
        f"upstream model {body.get('model')!r}, not {UPSTREAM_MODEL[route]}",
    )
    return body


# ---------------------------------------------------------------------------------------
# 1, 2: the two-turn tool-calling agent loop, whole and streamed
# ---------------------------------------------------------------------------------------


def history_with_results(calls):
    """QUESTION, the assistant's tool calls and one `tool` message per call (the weather
    last, as the sim echoes the last message): the second turn's messages. `calls` is a
    list of {"id", "name", "arguments"} with the arguments as the JSON text received."""
    weather = []
    for c in calls:
        expect(c["id"], f"a tool call without id: {c}")
        expect(c["name"] in TOOL_NAMES, f"a call of an unknown tool: {c}")
        try:
            args = json.loads(c["arguments"])
        except ValueError as e:
            raise AssertionError(f"arguments are not JSON ({e}): {c['arguments']!r}")
        expect(isinstance(args, dict), f"arguments are not an object: {c['arguments']!r}")
        if c["name"] == "get_weather":
            expect(
                isinstance(args.get("city"), str) and args["city"],
                f"get_weather without a city: {c['arguments']!r}",
            )
            weather.append(c)
    expect(weather, f"no get_weather call among {calls}")
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ],
    }
    others = [c for c in calls if c["name"] != "get_weather"]
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": "12:00"} for c in others
    ] + [{"role": "tool", "tool_call_id": c["id"], "content": WEATHER} for c in weather]
    return QUESTION + [assistant] + results


def expect_answer(text, finish):
    expect(finish == "stop", f"second turn finish_reason {finish!r}, not 'stop'")
    expect(isinstance(text, str) and WEATHER in text, f"the tool result is not in {text!r}")


@on_routes(*ROUTES)
def tool_loop(route):
    first = chat(route, QUESTION, tools=TOOLS, tool_choice="required")
    choice = first.choices[0]
    expect(choice.message.tool_calls, f"no tool_calls: {choice.message}")
    calls = [
        {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
        for tc in choice.message.tool_calls
    ]
    messages = history_with_results(calls)
    second = chat(route, messages, tools=TOOLS)
    answer = second.choices[0]
    expect(not answer.message.tool_calls, f"tool calls again: {answer.message.tool_calls}")
    expect_answer(answer.message.content, answer.finish_reason)
    print(f"{route}: {len(calls)} call(s) ({choice.finish_reason}), then {answer.message.content!r}")


@on_routes(*ROUTES)
def tool_history_reaches_upstream(route):
    """The second turn's history as the provider got it: unchanged for OpenAI; for
    Anthropic a `tool_use` block (input = the arguments) and a `tool_result` block."""
    first = chat(route, QUESTION, tools=TOOLS, tool_choice="required")
    expect(first.choices[0].message.tool_calls, f"no tool_calls: {first.choices[0].message}")
    calls = [
        {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
        for tc in first.choices[0].message.tool_calls
    ]
    messages = history_with_results(calls)
    chat(route, messages, tools=TOOLS)
    body = upstream(route)
    if route == "gpt":
        expect(body.get("messages") == messages, f"messages changed: {body.get('messages')}")
        expect(body.get("tools") == TOOLS, f"tools changed: {body.get('tools')}")
        return
    blocks = [
        (m.get("role"), b)
        for m in body.get("messages", [])
        if isinstance(m.get("content"), list)
        for b in m["content"]
    ]
    uses = {b.get("id"): b for role, b in blocks if role == "assistant" and b.get("type") == "tool_use"}
    results = {b.get("tool_use_id"): b for role, b in blocks if role == "user" and b.get("type") == "tool_result"}
    for c in calls:
        use = uses.get(c["id"])
        expect(use, f"no tool_use block for {c['id']} in {body.get('messages')}")
        expect(use.get("name") == c["name"], f"tool_use {use}")
        expect(use.get("input") == json.loads(c["arguments"]), f"tool_use input {use}")
        expect(c["id"] in results, f"no tool_result for {c['id']} in {body.get('messages')}")
    expect(WEATHER in json.dumps(list(results.values())), f"the weather is not in {results}")
    names = [t.get("name") for t in body.get("tools", [])]
    expect(names == [t["function"]["name"] for t in TOOLS], f"upstream tools {body.get('tools')}")
    schema = body["tools"][0].get("input_schema")
    expect(schema == TOOLS[0]["function"]["parameters"], f"input_schema {schema}")


def streamed(route, messages, **kwargs):
    """Streams a chat: (tool calls reassembled by index, text, finish_reason, chunks)."""
    stream = chat(route, messages, stream=True, **kwargs)
    calls, text, finish, chunks = {}, [], None, 0
    for chunk in stream:
        chunks += 1
        for choice in chunk.choices:
            expect(choice.index == 0, f"a chunk of choice {choice.index}")
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            for tc in delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": "", "pieces": 0})
                if tc.id:
                    expect(c["id"] in (None, tc.id), f"call {tc.index}: a second id {tc.id}")
                    c["id"] = tc.id
                if tc.function and tc.function.name:
                    c["name"] = c["name"] or tc.function.name
                if tc.function and tc.function.arguments:
                    c["arguments"] += tc.function.arguments
                    c["pieces"] += 1
            if choice.finish_reason:
                finish = choice.finish_reason
    return [calls[i] for i in sorted(calls)], "".join(text), finish, chunks


@on_routes(*ROUTES)
def tool_loop_streamed(route):
    calls, _, finish, chunks = streamed(route, QUESTION, tools=TOOLS, tool_choice="required")
    expect(calls, f"no tool call deltas in {chunks} chunks (finish_reason {finish!r})")
    pieces = [c["pieces"] for c in calls]
    messages = history_with_results(calls)
    _, text, finish2, chunks2 = streamed(route, messages, tools=TOOLS)
    expect(chunks2 > 1, f"the answer came in {chunks2} chunk(s)")
    expect_answer(text, finish2)
    print(f"{route}: {len(calls)} call(s) in {chunks} chunks, argument pieces {pieces}; then {text!r}")


# ---------------------------------------------------------------------------------------
# 3: structured output into a pydantic model
# ---------------------------------------------------------------------------------------


class Answer(BaseModel):
    city: str
    temperature_c: int


# Newer SDKs have it on chat.completions, older ones under beta.
PARSE = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse


@on_routes(*ROUTES)
def structured_output_parse(route):
    completion = PARSE(
        model=route,
        messages=[{"role": "user", "content": "The weather in Paris: city and temperature_c."}],
        response_format=Answer,
    )
    message = completion.choices[0].message
    expect(isinstance(message.parsed, Answer), f"parsed {message.parsed!r} from {message.content!r}")
    print(f"{route}: {message.parsed!r}")
    if route == "gpt":
        rf = upstream(route).get("response_format") or {}
        expect(rf.get("type") == "json_schema", f"upstream response_format {rf}")
        expect(rf.get("json_schema", {}).get("name") == "Answer", f"upstream response_format {rf}")


# ---------------------------------------------------------------------------------------
# 4: vision input
# ---------------------------------------------------------------------------------------


@on_routes(*ROUTES)
def vision_image_reaches_upstream(route):
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
    ]
    completion = chat(route, [{"role": "user", "content": content}])
    text = completion.choices[0].message.content
    expect(isinstance(text, str) and text, f"no text answer: {completion.choices[0].message}")
    body = upstream(route)
    last = body["messages"][-1]
    if route == "gpt":
        expect(last.get("content") == content, f"upstream content {last.get('content')}")
        return
    blocks = last.get("content")
    expect(isinstance(blocks, list), f"upstream content {blocks!r}")
    images = [b for b in blocks if b.get("type") == "image"]
    want = {"type": "base64", "media_type": "image/png", "data": IMAGE_B64}
    expect(images and images[0].get("source") == want, f"no image block {want} in {blocks}")
    texts = [b.get("text") for b in blocks if b.get("type") == "text"]
    expect(texts == ["What is in this image?"], f"upstream text blocks {texts}")


# ---------------------------------------------------------------------------------------
# 5: n > 1
# ---------------------------------------------------------------------------------------


@on_routes("gpt")
def n_2_gives_two_choices(route):
    completion = chat(route, [{"role": "user", "content": "Two answers, please"}], n=2)
    indexes = sorted(c.index for c in completion.choices)
    expect(indexes == [0, 1], f"choices {indexes}")
    expect(all(c.message.content for c in completion.choices), f"an empty choice: {completion.choices}")
    expect(upstream(route).get("n") == 2, "n did not reach the provider")


def names(message, word):
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", message) is not None


@on_routes("claude")
def n_2_is_bad_request(route):
    e = expect_raises(
        openai.BadRequestError,
        lambda: chat(route, [{"role": "user", "content": "Two answers, please"}], n=2),
    )
    expect(e.status_code == 400, e.status_code)
    expect(names(e.message, "n"), f"the message does not name n: {e.message}")
    expect("sim-claude" in e.message, f"the message does not name the endpoint: {e.message}")
    print(f"{route}: {e.message}")


# ---------------------------------------------------------------------------------------
# 6: unknown and provider-specific fields
# ---------------------------------------------------------------------------------------


@on_routes("gpt")
def unknown_fields_pass_through(route):
    messages = [{"role": "user", "content": "Pass these on"}]
    chat(
        route,
        messages,
        seed=7,
        user="u1",
        presence_penalty=0.5,
        extra_body={"some_future_field": {"x": 1}},
    )
    body = upstream(route)
    want = {"some_future_field": {"x": 1}, "seed": 7, "user": "u1", "presence_penalty": 0.5,
            "messages": messages}
    got = {k: body.get(k) for k in want}
    expect(got == want, f"upstream {got}, not {want}")


@on_routes("claude")
def logprobs_is_bad_request(route):
    e = expect_raises(
        openai.BadRequestError,
        lambda: chat(route, [{"role": "user", "content": "x"}], logprobs=True),
    )
    expect(e.status_code == 400, e.status_code)
    expect(names(e.message, "logprobs"), f"the message does not name logprobs: {e.message}")
    print(f"{route}: {e.message}")


@on_routes("claude")
def user_becomes_metadata_user_id(route):
    chat(route, [{"role": "user", "content": "Who am I?"}], user="u1")
    body = upstream(route)
    expect((body.get("metadata") or {}).get("user_id") == "u1", f"upstream metadata {body.get('metadata')}")
    # The Messages API refuses fields it does not know.
    expect("user" not in body, f"`user` itself reached Anthropic: {body.get('user')!r}")


# ---------------------------------------------------------------------------------------
# 7: embeddings
# ---------------------------------------------------------------------------------------


def vectors(response, want=2, dims=8):
    expect(len(response.data) == want, f"{len(response.data)} embeddings, not {want}")
    expect([d.index for d in response.data] == list(range(want)), [d.index for d in response.data])
    for d in response.data:
        v = d.embedding
        expect(isinstance(v, list) and len(v) == dims, f"embedding {v!r} is not {dims} numbers")
        expect(all(isinstance(x, float) and math.isfinite(x) for x in v), f"not finite floats: {v}")
    return [d.embedding for d in response.data]


FLOATS = {}


@on_routes("embed")
def embeddings_float(route):
    res = client.embeddings.create(model=route, input=["a", "b"], dimensions=8, encoding_format="float")
    FLOATS["a", "b"] = vectors(res)
    body = upstream_embed()
    want = {"model": "embed-sim", "input": ["a", "b"], "dimensions": 8, "encoding_format": "float"}
    got = {k: body.get(k) for k in want}
    expect(got == want, f"upstream {got}, not {want}")


def upstream_embed():
    path, body = last_request()
    expect(path == "/v1/embeddings", f"upstream path {path!r}")
    return body


@on_routes("embed")
def embeddings_sdk_default_base64(route):
    """The SDK's default: it asks for base64 and decodes to floats itself."""
    res = client.embeddings.create(model=route, input=["a", "b"], dimensions=8)
    vectors(res)
    body = upstream_embed()
    expect(body.get("encoding_format") == "base64", f"upstream encoding_format {body.get('encoding_format')!r}")
    expect(body.get("model") == "embed-sim", f"upstream model {body.get('model')!r}")


@on_routes("embed")
def embeddings_base64_raw(route):
    """Explicit base64: the JSON `embedding` is a string of 8 little-endian float32s."""
    raw = client.embeddings.with_raw_response.create(
        model=route, input=["a", "b"], dimensions=8, encoding_format="base64"
    )
    data = json.loads(raw.text)["data"]
    expect(len(data) == 2, f"{len(data)} embeddings")
    for d in data:
        expect(isinstance(d["embedding"], str), f"embedding is not a string: {d['embedding']!r}")
        b = base64.b64decode(d["embedding"], validate=True)
        expect(len(b) == 32, f"{len(b)} bytes, not 8 float32s")
        floats = struct.unpack("<8f", b)
        expect(all(math.isfinite(x) for x in floats), floats)
        if FLOATS.get(("a", "b")):
            # The same inputs as in embeddings_float: the same vectors (the sim's are a
            # function of the input), up to float32 rounding.
            want = FLOATS["a", "b"][d["index"]]
            expect(all(abs(x - y) <= 1e-6 * max(1, abs(y)) for x, y in zip(floats, want)),
                   f"base64 {floats} differs from float {want}")


@on_routes("claude")
def embeddings_is_bad_request(route):
    e = expect_raises(
        openai.BadRequestError,
        lambda: client.embeddings.create(model=route, input=["a", "b"], dimensions=8),
    )
    expect(e.status_code == 400, e.status_code)
    expect("embed" in e.message.lower(), f"the message does not say it cannot embed: {e.message}")
    print(f"{route}: {e.message}")


if __name__ == "__main__":
    run("chat")
