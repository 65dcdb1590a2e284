#!/usr/bin/env python3
"""Readiness probe for the kafka-conn test brokers (Python stdlib only).

Sends a raw Kafka ApiVersions v0 request (request header v1, response header
v0) to every HOST:PORT and waits until each one answers, or until the deadline.
v0 is used because every broker we run (tansu, the librdkafka mock, anything
Kafka-shaped) answers it, and its body has no flexible/tagged fields to decode.

Usage:
  probe.py [--timeout SECS] [--ca CAFILE [--server-name NAME]]
           [--cert CERTFILE --key KEYFILE] [--proxy URL] [--expect-failure] HOST:PORT...

  --ca             speak TLS and verify the server against CAFILE
  --server-name    SNI / name to verify (default: localhost)
  --cert/--key     present a client certificate (mutual TLS)
  --proxy          tunnel through socks5://[USER:PASS@]HOST:PORT (RFC 1928, with
                   RFC 1929 username/password) or http://[USER:PASS@]HOST:PORT
                   (HTTP CONNECT, RFC 9110, with Basic Proxy-Authorization). A
                   HOST that is a name is passed to the proxy to resolve.
  --expect-failure negative check: succeed only if the request FAILS (no
                   retries), e.g. a wrong CA or a missing client certificate;
                   with --proxy, only a refusal by the proxy itself counts (it
                   first waits up to --timeout for the proxy to listen)

Prints one line per endpoint. Exit status 0 = all as expected, 1 = not.
"""
import argparse
import base64
import ipaddress
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


class ProxyRefused(Exception):
    """The proxy answered, and said no."""


SOCKS5_REPLIES = {1: "general SOCKS server failure", 2: "connection not allowed by ruleset",
                  3: "network unreachable", 4: "host unreachable", 5: "connection refused",
                  6: "TTL expired", 7: "command not supported", 8: "address type not supported"}


def parse_proxy(url):
    """socks5://[user:pass@]host:port or http://... -> (scheme, host, port, user, password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("socks5", "http"):
        raise ValueError("proxy URL must start with socks5:// or http://: %r" % url)
    cred, _, hostport = rest.rpartition("@")
    user, _, password = cred.partition(":")
    host, _, port = hostport.rstrip("/").rpartition(":")
    return scheme, host, int(port), user or None, password or None


def socks5_connect(sock, host, port, user, password):
    methods = b"\x00\x02" if user else b"\x00"
    sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
    ver, method = recv_exact(sock, 2)
    if ver != 5:
        raise ValueError("not a SOCKS5 proxy (version byte %d)" % ver)
    if method == 0xFF:
        raise ProxyRefused("SOCKS5: no acceptable authentication method (offered %s)"
                           % ("none, username/password" if user else "none"))
    if method == 2:
        if not user:
            raise ProxyRefused("SOCKS5: proxy requires username/password")
        u, p = user.encode(), (password or "").encode()
        sock.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        _, status = recv_exact(sock, 2)
        if status != 0:
            raise ProxyRefused("SOCKS5: username/password rejected (status %d)" % status)
    elif method != 0:
        raise ValueError("SOCKS5: proxy chose unoffered method %d" % method)
    try:
        ip = ipaddress.ip_address(host)
        dst = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:  # a name: the proxy resolves it (remote DNS)
        dst = b"\x03" + bytes([len(host)]) + host.encode()
    sock.sendall(b"\x05\x01\x00" + dst + struct.pack(">H", port))
    ver, rep, _, atyp = recv_exact(sock, 4)
    if rep != 0:
        raise ProxyRefused("SOCKS5 reply %d: %s" % (rep, SOCKS5_REPLIES.get(rep, "unknown")))
    recv_exact(sock, {1: 4, 4: 16}.get(atyp) or recv_exact(sock, 1)[0])
    recv_exact(sock, 2)


def http_connect(sock, host, port, user, password):
    target = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (target, target)
    if user:
        token = base64.b64encode(("%s:%s" % (user, password or "")).encode()).decode()
        req += "Proxy-Authorization: Basic %s\r\n" % token
    sock.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:  # byte by byte: nothing after the head may be consumed
        head += recv_exact(sock, 1)
        if len(head) > 65536:
            raise ValueError("HTTP CONNECT: response head too long")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not an HTTP proxy: %r" % status_line)
    if not parts[1].startswith("2"):
        raise ProxyRefused("HTTP CONNECT: %s" % status_line)


def open_socket(addr, proxy, timeout):
    host, port = addr.rsplit(":", 1)
    host, port = host.strip("[]"), int(port)
    if proxy is None:
        return socket.create_connection((host, port), timeout=timeout)
    scheme, phost, pport, user, password = parse_proxy(proxy)
    sock = socket.create_connection((phost, pport), timeout=timeout)
    try:
        (socks5_connect if scheme == "socks5" else http_connect)(sock, host, port, user, password)
    except BaseException:
        sock.close()
        raise
    return sock


def api_versions_v0(addr, ctx, server_name, timeout, proxy=None):
    """One ApiVersions v0 round trip. Returns (error_code, {api_key: (min, max)})."""
    sock = open_socket(addr, proxy, timeout)
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
    p.add_argument("--proxy", action="append", help="repeatable: every HOST:PORT through each")
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
    base = "tls" if ctx else "plain"
    if a.cert:
        base = "mtls"

    deadline = time.monotonic() + a.timeout
    status = 0
    for proxy in a.proxy or [None]:
        mode = base if proxy is None else "%s via %s" % (base, redact(proxy))
        if a.expect_failure and proxy:
            _, phost, pport, _, _ = parse_proxy(proxy)
            while True:
                try:
                    socket.create_connection((phost, pport), timeout=3.0).close()
                    break
                except OSError as e:
                    if time.monotonic() >= deadline:
                        print("PROXY NOT LISTENING %s:%d after %.0fs: %r" % (phost, pport, a.timeout, e),
                              file=sys.stderr)
                        return 1
                    time.sleep(0.05)
        for addr in a.addrs:
            if not check(addr, ctx, a, proxy, mode, deadline):
                status = 1
                if not a.expect_failure:
                    return status
    return status


def redact(proxy):
    """The proxy URL without its password, for messages."""
    scheme, host, port, user, password = parse_proxy(proxy)
    return "%s://%s%s:%d" % (scheme, "%s:***@" % user if user else "", host, port)


def check(addr, ctx, a, proxy, mode, deadline):
    """One endpoint: True when it behaved as expected (printed either way)."""
    if a.expect_failure:
        try:
            api_versions_v0(addr, ctx, a.server_name, 5.0, proxy)
        except ProxyRefused as e:
            print("refused-as-expected %s (%s): %s" % (addr, mode, e))
        except Exception as e:  # noqa: BLE001 - any failure is the expected outcome
            if proxy:  # ... except that a proxy must refuse by itself, not fail otherwise
                print("FAILED, BUT NOT BY A PROXY REFUSAL %s (%s): %r" % (addr, mode, e),
                      file=sys.stderr)
                return False
            print("refused-as-expected %s (%s): %s" % (addr, mode, e))
        else:
            print("UNEXPECTED SUCCESS %s (%s): the request should have failed" % (addr, mode),
                  file=sys.stderr)
            return False
        return True
    while True:
        try:
            err, apis = api_versions_v0(addr, ctx, a.server_name, 3.0, proxy)
            av = apis.get(API_VERSIONS, ("?", "?"))
            print("ready %s (%s): error_code=%d apis=%d ApiVersions=%s-%s"
                  % (addr, mode, err, len(apis), av[0], av[1]))
            return True
        except Exception as e:  # noqa: BLE001 - keep the last failure for the report
            if time.monotonic() >= deadline:
                print("NOT READY %s (%s) after %.0fs: %r" % (addr, mode, a.timeout, e),
                      file=sys.stderr)
                return False
            time.sleep(0.1)

if __name__ == "__main__":
    sys.exit(main())
