"""The article's client.py flow (kubemq>=3.4.1,<4) against `llm-router up`.

Sends a plain prompt on `openai_requests` and `claude_requests` with send_query_request,
parses the body as JSON and prints ["response"], exactly as the example's client does.
Env: KUBEMQ_ADDRESS (host:port of the gRPC listener). One PASS/FAIL line per check.
"""

import json

from kubemq.cq import Client, QueryMessage

from interop import address, check, expect, run


class LLMClient:
    """The article's client: one query per prompt, channel `<model>_requests`."""

    def __init__(self, address):
        self.client = Client(address=address, client_id="article-client")

    def send_message(self, message, model):
        response = self.client.send_query_request(
            QueryMessage(
                channel=f"{model}_requests",
                body=message.encode("utf-8"),
                timeout_in_seconds=30,
            )
        )
        expect(response.is_executed, f"query not executed: {response.error!r}")
        return json.loads(response.body)


llm = LLMClient(address())


def ask(model, prompt):
    answer = llm.send_message(prompt, model)["response"]
    print(f"{model}: {answer}", flush=True)
    expect(isinstance(answer, str) and answer, f"empty answer from {model}")
    return answer


@check
def openai_channel_answers_a_plain_prompt():
    ask("openai", "What is the capital of France?")


@check
def claude_channel_answers_a_plain_prompt():
    ask("claude", "Explain message brokers in one sentence.")


@check
def bad_body_is_an_error_not_silence():
    response = llm.client.send_query_request(
        QueryMessage(channel="openai_requests", body=b"\xff\xfe", timeout_in_seconds=10)
    )
    expect(not response.is_executed, "invalid UTF-8 was executed")
    expect("UTF-8" in response.error, f"unclear error {response.error!r}")
    expect(json.loads(response.body)["error"] == response.error, "body does not carry the error")


if __name__ == "__main__":
    run("article")
