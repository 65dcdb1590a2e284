#!/usr/bin/env python3
"""Readiness probe for the kafka-conn test brokers (Python stdlib only).

Sends a raw Kafka ApiVersions v0 request (request header v1, response header
v0) to every HOST:PORT and waits until each one answers, or until the deadline.
v0 is used because every broker we run (tansu, the librdkafka mock, anything
Kafka-shaped) answers it, and its body has no flexible/tagged fields to decode.

Usage:
  probe.py [--timeout SECS] [--ca CAFILE [--server-name NAME]]
           [--cert CERTFILE --key KEYFILE] [--expect-failure] HOST:PORT...

  --ca             speak TLS and verify the server against CAFILE
  --server-name    SNI / name to verify (default: localhost)
  --cert/--key     present a client certificate (mutual TLS)
  --expect-failure negative check: succeed only if the request FAILS (no
                   retries), e.g. a wrong CA or a missing client certificate

Prints one line per endpoint. Exit status 0 = all as expected, 1 = not.
"""
import argparse
import socket
import ssl
import struct
import sys
import time

API_VERSIONS = 18
CORRELATION_ID = 0x6B636F6E  # "kcon"
CLIENT_ID = b"kafka-conn-probe"


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed by peer after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def api_versions_v0(addr, ctx, server_name, timeout):
    """One ApiVersions v0 round trip. Returns (error_code, {api_key: (min, max)})."""
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname=server_name)
        # request header v1: api_key i16, api_version i16, correlation_id i32, client_id string
        body = struct.pack(">hhih", API_VERSIONS, 0, CORRELATION_ID, len(CLIENT_ID)) + CLIENT_ID
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        if size < 10 or size > 1 << 20:
            raise ValueError("implausible response size %d" % size)
        data = recv_exact(sock, size)
        corr, err, count = struct.unpack(">ihi", data[:10])
        if corr != CORRELATION_ID:
            raise ValueError("correlation id mismatch: sent %d, got %d" % (CORRELATION_ID, corr))
        if count < 0 or 10 + 6 * count > len(data):
            raise ValueError("bad api array length %d" % count)
        apis = {}
        for i in range(count):
            key, lo, hi = struct.unpack(">hhh", data[10 + 6 * i:16 + 6 * i])
            apis[key] = (lo, hi)
        return err, apis
    finally:
        sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timeout", type=float, default=30.0, help="overall deadline in seconds")
    p.add_argument("--ca")
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--expect-failure", action="store_true")
    p.add_argument("addrs", nargs="+", metavar="HOST:PORT")
    a = p.parse_args()

    ctx = None
    if a.ca:
        ctx = ssl.create_default_context(cafile=a.ca)
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
    elif a.cert:
        p.error("--cert needs --ca")
    mode = "tls" if ctx else "plain"
    if a.cert:
        mode = "mtls"

    deadline = time.monotonic() + a.timeout
    status = 0
    for addr in a.addrs:
        if a.expect_failure:
            try:
                api_versions_v0(addr, ctx, a.server_name, 5.0)
            except Exception as e:  # noqa: BLE001 - any failure is the expected outcome
                print("refused-as-expected %s (%s): %s" % (addr, mode, e))
            else:
                print("UNEXPECTED SUCCESS %s (%s): the request should have failed" % (addr, mode),
                      file=sys.stderr)
                status = 1
            continue
        last = None
        while True:
            try:
                err, apis = api_versions_v0(addr, ctx, a.server_name, 3.0)
                av = apis.get(API_VERSIONS, ("?", "?"))
                print("ready %s (%s): error_code=%d apis=%d ApiVersions=%s-%s"
                      % (addr, mode, err, len(apis), av[0], av[1]))
                break
            except Exception as e:  # noqa: BLE001 - keep the last failure for the report
                last = e
                if time.monotonic() >= deadline:
                    print("NOT READY %s (%s) after %.0fs: %r" % (addr, mode, a.timeout, last),
                          file=sys.stderr)
                    return 1
                time.sleep(0.1)
    return status


if __name__ == "__main__":
    sys.exit(main())
