"""A consumer of whatsapp-handler's outbox, as a business service would write one
(docs/queues.md explains the contract). Log in with a role granted
whatsapp_handler_consumer:

    python docs/outbox_consumer.py postgresql://billing@db/whatsapp_handler [--once]

Each event is handled at least once: a crash after handling and before the
acknowledgement brings it back after the visibility timeout, so handle it idempotently
(event_id is unique). Each user's events arrive one at a time, in order.
"""

from __future__ import annotations

import argparse
import json
import time

import psycopg

READ = "SELECT msg_id, message FROM whatsapp_handler.outbox_read(%s, %s)"
ACK = "SELECT whatsapp_handler.outbox_ack(%s)"
NACK = "SELECT whatsapp_handler.outbox_nack(%s, %s)"
VISIBILITY_SECONDS = 30  # longer than handling one batch takes
BATCH = 50


def handle(event: dict) -> None:
    """The service's own work; here, print it. Raise to have the event read again later."""
    print(json.dumps({"type": event["type"], "user": event["aggregate_id"], "event_id": event["event_id"]}))


def consume(conn: psycopg.Connection) -> int:
    """One read: handle, then acknowledge what went well and give back what did not."""
    done: list[int] = []
    for msg_id, event in conn.execute(READ, (BATCH, VISIBILITY_SECONDS)).fetchall():
        try:
            handle(event)
            done.append(msg_id)
        except Exception:
            # Back in a minute; after outbox.max_reads reads it moves to outbox_dlq for a person.
            conn.execute(NACK, (msg_id, 60))
    if done:
        conn.execute(ACK, (done,))
    return len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--once", action="store_true", help="read until the outbox is empty, then stop")
    args = parser.parse_args()
    with psycopg.connect(args.url, autocommit=True) as conn:
        while True:
            handled = consume(conn)
            if handled == 0 and args.once:
                return
            if handled == 0:
                time.sleep(1)


if __name__ == "__main__":
    main()
