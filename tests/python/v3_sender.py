"""kubemq 3.x sender, shaped like the article's client.py, against v3_responder.py."""

import base64
import json
import os
import threading
import time
import urllib.request

from kubemq.cq import Client, QueryMessage

from interop import embedded_only, address, check, expect, run, wait_until

client = Client(address=address(), client_id="v3-sender")


def ask(prompt, channel="openai_requests", timeout=5):
    """The article's send_message: a query, then json.loads(body)['response']."""
    response = client.send_query_request(
        QueryMessage(channel=channel, body=prompt.encode("utf-8"), timeout_in_seconds=timeout)
    )
    expect(response.is_executed, f"query not executed: {response.error!r}")
    return json.loads(response.body)["response"]


def responder_up():
    try:
        return ask("warm-up", timeout=1) == "echo: warm-up"
    except Exception:  # noqa: BLE001 - not subscribed yet: the query times out
        return False


@check
def ping_reports_kubemq_version():
    info = client.ping()
    expect(info.version == "v2.4.0", f"version {info.version!r}")
    expect(info.host != "", "empty host")
    expect(info.server_start_time > 1_600_000_000, f"start time {info.server_start_time}")


@check
def query_round_trip_like_the_article():
    expect(wait_until(responder_up, timeout=20, interval=0.2), "responder never answered")
    for prompt in ["What is KubeMQ?", "Say hi", "ünïcødé ✓"]:
        answer = ask(prompt, timeout=30)
        expect(answer == f"echo: {prompt}", f"answer {answer!r}")


@check
def concurrent_queries_each_get_their_own_answer():
    answers = {}

    def worker(i):
        answers[i] = ask(f"prompt {i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expect(answers == {i: f"echo: prompt {i}" for i in range(10)}, f"answers {answers}")


@embedded_only
def rest_query_with_body_string_reaches_the_python_responder():
    request = urllib.request.Request(
        f"http://{os.environ['KUBEMQ_REST']}/send/request",
        data=json.dumps(
            {"RequestTypeData": 2, "ClientID": "rest-client", "Channel": "openai_requests",
             "BodyString": "over REST", "Timeout": 5000}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        envelope = json.loads(reply.read())
    expect(envelope["is_error"] is False, f"envelope {envelope}")
    body = base64.b64decode(envelope["data"]["Body"])
    expect(json.loads(body)["response"] == "echo: over REST", f"body {body!r}")


@check
def query_without_responder_fails_with_301_after_its_timeout():
    started = time.monotonic()
    try:
        client.send_query_request(
            QueryMessage(channel="anthropic_requests", body=b"anyone?", timeout_in_seconds=1)
        )
    except Exception as e:  # noqa: BLE001 - the 3.x SDK raises the raw grpc.RpcError
        elapsed = time.monotonic() - started
        expect("Error 301: timeout for request message" in str(e), f"error {e}")
        expect(elapsed >= 0.9, f"failed after {elapsed:.3f}s, before the timeout")
        return
    raise AssertionError("a query without responder succeeded")


if __name__ == "__main__":
    run("kubemq3")
