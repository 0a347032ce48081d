"""The official OpenAI Python SDK against the gateway of `llm-router up --sim`.

Env: GATEWAY_URL (http://host:port of the gateway), GATEWAY_KEY (a key it accepts).
One PASS/FAIL line per check.
"""

import os

import openai

from interop import check, expect, run

BASE_URL = os.environ["GATEWAY_URL"] + "/v1"
KEY = os.environ["GATEWAY_KEY"]

client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=30)


def hello(model, text="Hello from the OpenAI SDK"):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )


def expect_raises(error_type, call):
    """Runs `call`, expects `error_type`, returns the exception."""
    try:
        call()
    except error_type as e:
        return e
    except openai.APIError as e:
        raise AssertionError(f"expected {error_type.__name__}, got {type(e).__name__}: {e}")
    raise AssertionError(f"expected {error_type.__name__}, nothing raised")


@check
def chat_completion():
    completion = hello("openai", "What is the capital of France?")
    content = completion.choices[0].message.content
    print(f"openai: {content}", flush=True)
    expect("capital of France" in content, f"the sim echo is missing: {content!r}")
    expect(completion.object == "chat.completion", completion.object)
    expect(completion.usage.total_tokens > 0, completion.usage)
    expect(completion._request_id, "no x-request-id on the response")


@check
def request_id_is_echoed():
    raw = client.chat.completions.with_raw_response.create(
        model="claude",
        messages=[{"role": "user", "content": "id please"}],
        extra_headers={"x-request-id": "py-req-1"},
    )
    expect(raw.headers.get("x-request-id") == "py-req-1", dict(raw.headers))
    expect(raw.parse().choices[0].message.content, "empty answer")


@check
def route_slash_model_is_accepted():
    completion = hello("openai/gpt-4.1-mini")
    expect(completion.choices[0].message.content, "empty answer")


@check
def models_list():
    ids = [m.id for m in client.models.list()]
    for wanted in ["openai", "claude", "openai/gpt-4o-mini", "openai/gpt-4.1-mini"]:
        expect(wanted in ids, f"{wanted} not in {ids}")
    owners = {m.owned_by for m in client.models.list()}
    expect(owners == {"llm-router"}, owners)


@check
def unknown_route_is_not_found_error():
    e = expect_raises(openai.NotFoundError, lambda: hello("no-such-route"))
    expect(e.status_code == 404, e.status_code)
    expect(e.code == "unknown_route", e.code)
    expect("openai" in e.message and "claude" in e.message, e.message)


@check
def wrong_key_is_authentication_error():
    wrong = openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong", max_retries=0)
    e = expect_raises(
        openai.AuthenticationError,
        lambda: wrong.chat.completions.create(
            model="openai", messages=[{"role": "user", "content": "x"}]
        ),
    )
    expect(e.status_code == 401, e.status_code)
    expect("sk-wrong" not in str(e), "the error quotes the key")


@check
def empty_messages_is_bad_request_error():
    e = expect_raises(
        openai.BadRequestError,
        lambda: client.chat.completions.create(model="openai", messages=[]),
    )
    expect(e.param == "messages", e.param)


if __name__ == "__main__":
    run("gateway")
