"""kubemq 4.x checks: queues (send, batch, receive with ack/nack/re_queue, peek, pull,
ack-all), the CQ query round trip with the 4.x names, and channel management."""

import json
import uuid

from kubemq import CancellationToken, CQClient, QueriesSubscription, QueryMessage
from kubemq import QueryReceived, QueryResponse, QueuesClient, QueueMessage

from interop import embedded_only, address, check, expect, run, wait_until

queues = QueuesClient(address=address(), client_id="v4-queues")
cq = CQClient(address=address(), client_id="v4-cq")


def fresh(name):
    """A channel name no earlier run used (the broker's data dir is per run anyway)."""
    return f"py4.{name}.{uuid.uuid4().hex[:8]}"


def send(channel, body, **kw):
    result = queues.send_queue_message(QueueMessage(channel=channel, body=body, **kw))
    expect(not result.is_error, f"send failed: {result.error}")
    return result


@check
def ping_reports_kubemq_version():
    info = queues.ping()
    expect(info.version == "v2.4.0", f"version {info.version!r}")


@check
def queue_send_receive_ack():
    channel = fresh("ack")
    sent = send(channel, b"hello", metadata="m", tags={"k": "v"})
    expect(sent.id, "no message id")
    got = queues.receive_queue_messages(channel=channel, max_messages=1, wait_timeout_in_seconds=2)
    expect(not got.is_error, f"receive error: {got.error}")
    expect(len(got.messages) == 1, f"{len(got.messages)} messages")
    msg = got.messages[0]
    expect((msg.body, msg.metadata, msg.tags.get("k")) == (b"hello", "m", "v"), f"message {msg}")
    expect(msg.id == sent.id, f"id {msg.id} != {sent.id}")
    expect(msg.receive_count == 1, f"receive count {msg.receive_count}")
    msg.ack()
    again = queues.receive_queue_messages(channel=channel, max_messages=1, wait_timeout_in_seconds=1)
    expect(not again.messages, "acked message delivered again")


@check
def queue_batch_and_nack_redelivers():
    channel = fresh("nack")
    batch = queues.send_queue_messages_batch(
        [QueueMessage(channel=channel, body=f"m{i}".encode()) for i in range(3)]
    )
    expect(not batch.have_errors and len(batch.results) == 3, f"batch {batch}")
    got = queues.receive_queue_messages(channel=channel, max_messages=3, wait_timeout_in_seconds=2)
    expect([m.body for m in got.messages] == [b"m0", b"m1", b"m2"], f"bodies {got.messages}")
    got.messages[0].nack()
    got.messages[1].ack()
    got.messages[2].ack()
    redelivered = queues.receive_queue_messages(
        channel=channel, max_messages=1, wait_timeout_in_seconds=2
    )
    expect(len(redelivered.messages) == 1, "nacked message not redelivered")
    msg = redelivered.messages[0]
    expect(msg.body == b"m0" and msg.receive_count == 2, f"redelivered {msg}")
    msg.ack()


@check
def queue_re_queue_moves_to_another_channel():
    source, target = fresh("src"), fresh("dst")
    send(source, b"move me")
    got = queues.receive_queue_messages(channel=source, max_messages=1, wait_timeout_in_seconds=2)
    expect(len(got.messages) == 1, "nothing received")
    got.messages[0].re_queue(target)
    moved = queues.receive_queue_messages(channel=target, max_messages=1, wait_timeout_in_seconds=2)
    expect([m.body for m in moved.messages] == [b"move me"], f"target got {moved.messages}")
    moved.messages[0].ack()
    left = queues.receive_queue_messages(channel=source, max_messages=1, wait_timeout_in_seconds=1)
    expect(not left.messages, "re-queued message still in the source")


@check
def queue_peek_leaves_messages_and_pull_takes_them():
    channel = fresh("peek")
    for i in range(2):
        send(channel, f"p{i}".encode())
    waiting = queues.peek_queue_messages(channel, 10, 1)
    expect(not waiting.is_error, f"peek error: {waiting.error}")
    expect([m.body for m in waiting.messages] == [b"p0", b"p1"], f"peeked {waiting.messages}")
    pulled = queues.pull(channel, 10, 1)
    expect([m.body for m in pulled.messages] == [b"p0", b"p1"], f"pulled {pulled.messages}")
    empty = queues.peek_queue_messages(channel, 10, 1)
    expect(not empty.messages, "pulled messages still waiting")


@check
def queue_ack_all_purges():
    channel = fresh("purge")
    for i in range(3):
        send(channel, f"x{i}".encode())
    expect(queues.ack_all_queue_messages(channel, wait_time_seconds=1) == 3, "not 3 purged")
    rest = queues.receive_queue_messages(channel=channel, max_messages=1, wait_timeout_in_seconds=1)
    expect(not rest.messages, "messages left after ack-all")


@check
def query_round_trip_with_the_4x_names():
    channel = fresh("queries")
    cancel = CancellationToken()

    def on_query(request: QueryReceived):
        answer = json.dumps({"response": request.body.decode().upper()}).encode()
        cq.send_response_message(
            QueryResponse(query_received=request, is_executed=True, body=answer)
        )

    cq.subscribe_to_queries(
        QueriesSubscription(channel=channel, on_receive_query_callback=on_query), cancel
    )

    def ask():
        try:
            return cq.send_query(QueryMessage(channel=channel, body=b"hey", timeout_in_seconds=1))
        except Exception:  # noqa: BLE001 - not subscribed yet
            return None

    response = wait_until(ask, timeout=15)
    cancel.cancel()
    expect(response is not None, "no answer within 15 s")
    expect(response.is_executed, f"not executed: {response.error}")
    expect(json.loads(response.body)["response"] == "HEY", f"body {response.body!r}")


@embedded_only
def channels_create_and_list():
    queue = fresh("managed")
    expect(queues.create_queues_channel(queue) is not False, "queue channel not created")
    names = [c.name for c in queues.list_queues_channels(queue)]
    expect(queue in names, f"{queue} not listed in {names}")
    query = fresh("managedq")
    expect(cq.create_queries_channel(query) is not False, "queries channel not created")
    names = [c.name for c in cq.list_queries_channels(query)]
    expect(query in names, f"{query} not listed in {names}")


if __name__ == "__main__":
    run("kubemq4")
