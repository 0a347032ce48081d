"""kubemq 3.x responder, shaped like the article's server.py: subscribes to
`openai_requests` and answers every query with `{"response": ...}` JSON.

A fake model replaces the LLM call: the answer is "echo: <prompt>". Runs until killed,
or for at most RESPONDER_SECONDS (default 300).
"""

import json
import os
import time

from kubemq.cq import (
    CancellationToken,
    Client,
    QueriesSubscription,
    QueryMessageReceived,
    QueryResponseMessage,
)


class FakeRouter:
    def __init__(self, address):
        self.client = Client(address=address, client_id="v3-responder")

    def handle_openai_query(self, request: QueryMessageReceived):
        prompt = request.body.decode("utf-8")
        answer = json.dumps({"response": f"echo: {prompt}"}).encode("utf-8")
        response = QueryResponseMessage(
            query_received=request,
            is_executed=True,
            body=answer,
            metadata="fake-openai",
        )
        self.client.send_response_message(response)

    def run(self, seconds):
        def on_error(err: str):
            print(f"responder subscription error: {err}", flush=True)

        cancel = CancellationToken()
        self.client.subscribe_to_queries(
            subscription=QueriesSubscription(
                channel="openai_requests",
                on_receive_query_callback=self.handle_openai_query,
                on_error_callback=on_error,
            ),
            cancel=cancel,
        )
        print("responder subscribed", flush=True)
        time.sleep(seconds)
        cancel.cancel()


if __name__ == "__main__":
    FakeRouter(os.environ["KUBEMQ_ADDRESS"]).run(int(os.environ.get("RESPONDER_SECONDS", "300")))
