#!/usr/bin/env python3
"""Captures raw Metadata response bodies from real brokers, as test data for the
Metadata decoder of kafka-conn-cluster (tests/metadata.rs).

Python stdlib only. For each broker and version it sends one Metadata request
(all topics, or one named topic with auto-creation where the version has the
flag) and writes the response *body* (the bytes after the response header) to
OUT/<name>-v<version>.bin, plus a line in OUT/README listing where it came from.

Usage: capture.py NAME HOST:PORT OUTDIR VERSION[,VERSION...] [TOPIC]
"""
import socket
import struct
import sys

METADATA = 3
CORRELATION_ID = 0x636C7573  # "clus"
CLIENT_ID = b"kafka-conn-capture"


def uvarint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def request_body(version, topic):
    flexible = version >= 9
    if topic is None:
        topics = uvarint(0) if flexible else struct.pack(">i", -1 if version >= 1 else 0)
    else:
        name = topic.encode()
        if flexible:
            entry = (b"\x00" * 16 if version >= 10 else b"") + uvarint(len(name) + 1) + name + uvarint(0)
            topics = uvarint(2) + entry
        else:
            topics = struct.pack(">ih", 1, len(name)) + name
    body = topics
    if version >= 4:
        body += b"\x01"  # allow_auto_topic_creation
    if 8 <= version <= 10:
        body += b"\x00"  # include_cluster_authorized_operations
    if version >= 8:
        body += b"\x00"  # include_topic_authorized_operations
    if flexible:
        body += uvarint(0)
    return body


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def capture(addr, version, topic):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        header = struct.pack(">hhih", METADATA, version, CORRELATION_ID, len(CLIENT_ID)) + CLIENT_ID
        if version >= 9:
            header += uvarint(0)  # request header v2: tagged fields
        frame = header + request_body(version, topic)
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        data = recv_exact(sock, size)
        (corr,) = struct.unpack(">i", data[:4])
        assert corr == CORRELATION_ID, "correlation id %d" % corr
        rest = data[4:]
        if version >= 9:  # response header v1: tagged fields (none expected)
            assert rest[0] == 0, "unexpected response header tagged fields"
            rest = rest[1:]
        return rest


def main():
    name, addr, out, versions = sys.argv[1:5]
    topic = sys.argv[5] if len(sys.argv) > 5 else None
    for v in (int(x) for x in versions.split(",")):
        body = capture(addr, v, topic)
        path = "%s/%s-v%d.bin" % (out, name, v)
        with open(path, "wb") as f:
            f.write(body)
        print("%s: %d bytes" % (path, len(body)))


if __name__ == "__main__":
    main()
