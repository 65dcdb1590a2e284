#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka / librdkafka) for the typed
round-trip tests: records kafka-conn produced are read back here, and records
produced here are fetched by kafka-conn, byte for byte.

  peer.py consume BOOTSTRAP TOPIC COUNT   -> partition 0's records as a JSON list on stdout
  peer.py produce BOOTSTRAP TOPIC < JSON  -> produces them to partition 0, prints their offsets

A record is {"key": hex|null, "value": hex|null, "headers": [[name, hex|null], ...]}.
"""
import json
import sys
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def hx(b):
    return None if b is None else b.hex()


def unhx(s):
    return None if s is None else bytes.fromhex(s)


def consume(bootstrap, topic, count):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "kafka-conn-peer-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    # Partition 0 only: kafka-conn produces and fetches there.
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    idle = 0
    while len(out) < count and idle < 60:
        m = c.poll(0.5)
        if m is None:
            idle += 1
            continue
        if m.error():
            print("consumer error: %s" % m.error(), file=sys.stderr)
            idle += 1
            continue
        out.append({
            "key": hx(m.key()),
            "value": hx(m.value()),
            "headers": [[k, hx(v)] for k, v in (m.headers() or [])],
            "offset": m.offset(),
        })
    c.close()
    json.dump(out, sys.stdout)


def produce(bootstrap, topic):
    records = json.load(sys.stdin)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": "none",
                  "linger.ms": 0})
    offsets = []
    errors = []

    def done(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            offsets.append(msg.offset())

    for r in records:
        p.produce(topic, partition=0, key=unhx(r["key"]), value=unhx(r["value"]),
                  headers=[(k, unhx(v)) for k, v in r["headers"]], on_delivery=done)
    left = p.flush(30)
    if errors or left:
        print("produce failed: %s (%d unflushed)" % (errors, left), file=sys.stderr)
        sys.exit(1)
    json.dump(offsets, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "produce":
        produce(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: peer.py consume|produce ...")
