"""kubemq 3.x beyond the article: events (sent over SendEventsStream), events store
replay, and queues (QueuesDownstream receive, ReceiveQueueMessages for waiting/pull)."""

import threading
import uuid

from kubemq.pubsub import CancellationToken, Client as PubSubClient
from kubemq.pubsub import EventMessage, EventsStoreSubscription, EventsStoreType
from kubemq.pubsub import EventsSubscription, EventStoreMessage
from kubemq.queues import Client as QueuesClient
from kubemq.queues import QueueMessage

from interop import address, check, expect, run, wait_until

pubsub = PubSubClient(address=address(), client_id="v3-pubsub")
queues = QueuesClient(address=address(), client_id="v3-queues")


def fresh(name):
    return f"py3.{name}.{uuid.uuid4().hex[:8]}"


class Inbox:
    """Collects bodies delivered to a subscription callback."""

    def __init__(self):
        self.lock = threading.Lock()
        self.bodies = []

    def __call__(self, message):
        with self.lock:
            self.bodies.append(message.body)

    def snapshot(self):
        with self.lock:
            return list(self.bodies)


@check
def events_reach_a_subscriber():
    channel = fresh("events")
    inbox, cancel = Inbox(), CancellationToken()
    pubsub.subscribe_to_events(
        EventsSubscription(channel=channel, on_receive_event_callback=inbox), cancel
    )

    def probe_delivered():
        pubsub.send_events_message(EventMessage(channel=channel, body=b"probe"))
        return b"probe" in inbox.snapshot()

    expect(wait_until(probe_delivered, timeout=10, interval=0.2), "subscription never got events")
    for i in range(5):
        pubsub.send_events_message(EventMessage(channel=channel, body=f"e{i}".encode()))
    wanted = [f"e{i}".encode() for i in range(5)]
    got = wait_until(lambda: [b for b in inbox.snapshot() if b != b"probe"] == wanted, timeout=5)
    cancel.cancel()
    expect(got, f"received {inbox.snapshot()}")


@check
def events_store_replays_from_first():
    channel = fresh("store")
    for i in range(3):
        result = pubsub.send_events_store_message(
            EventStoreMessage(channel=channel, body=f"s{i}".encode())
        )
        expect(result.sent, f"store event not sent: {result.error}")
    inbox, cancel = Inbox(), CancellationToken()
    pubsub.subscribe_to_events_store(
        EventsStoreSubscription(
            channel=channel,
            events_store_type=EventsStoreType.StartFromFirst,
            on_receive_event_callback=inbox,
        ),
        cancel,
    )
    wanted = [b"s0", b"s1", b"s2"]
    got = wait_until(lambda: inbox.snapshot() == wanted, timeout=10)
    cancel.cancel()
    expect(got, f"replayed {inbox.snapshot()}")


@check
def queue_send_receive_ack():
    channel = fresh("queue")
    sent = queues.send_queues_message(QueueMessage(channel=channel, body=b"q1", metadata="m"))
    expect(not sent.is_error, f"send failed: {sent.error}")
    got = queues.receive_queues_messages(channel=channel, max_messages=1, wait_timeout_in_seconds=2)
    expect(not got.is_error and len(got.messages) == 1, f"receive {got}")
    expect(got.messages[0].body == b"q1" and got.messages[0].id == sent.id, "wrong message")
    got.messages[0].ack()
    left = queues.waiting(channel, 10, 1)
    expect(not left.messages, "acked message still waiting")


@check
def queue_waiting_then_pull():
    channel = fresh("wait")
    for i in range(2):
        queues.send_queues_message(QueueMessage(channel=channel, body=f"w{i}".encode()))
    waiting = queues.waiting(channel, 10, 1)
    expect([m.body for m in waiting.messages] == [b"w0", b"w1"], f"waiting {waiting}")
    pulled = queues.pull(channel, 10, 1)
    expect([m.body for m in pulled.messages] == [b"w0", b"w1"], f"pulled {pulled}")
    expect(not queues.waiting(channel, 10, 1).messages, "pulled messages still waiting")


if __name__ == "__main__":
    run("kubemq3")
