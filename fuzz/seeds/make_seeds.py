#!/usr/bin/env python3
"""Writes the hand-made seed inputs of fuzz/corpus/<target>/ (seed-*), built with
Kafka's wire encodings: real-shaped ApiVersions (v0-v4, with KIP-584 feature tags),
SaslHandshake and SaslAuthenticate (v0-v2) responses, response headers (v0, v1),
and framed response streams for the frame decoder and connection targets.

The head bytes of the structured targets follow the `arbitrary` 1.x encoding of
their input types in crates/kafka-conn-core/src/fuzz_support.rs: integers
little-endian, bool = one byte (& 1), Option = bool then value, Vec = a `1` byte
before each element and a `0` byte after the last. Run from the repository root:
    python3 fuzz/seeds/make_seeds.py
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)


def uvarint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def string(s): return i16(len(s)) + s.encode()
def nullable_string(s): return i16(-1) if s is None else string(s)
def compact_string(s): return uvarint(len(s) + 1) + s.encode()
def bytes_i32(b): return i32(len(b)) + b
def compact_bytes(b): return uvarint(len(b) + 1) + b
def tagged(fields): return uvarint(len(fields)) + b"".join(uvarint(t) + uvarint(len(d)) + d for t, d in fields)


# A Kafka 3.7-like ApiVersions table (api key, min, max).
KAFKA_37 = [(0, 0, 10), (1, 0, 16), (2, 0, 8), (3, 0, 12), (8, 0, 9), (9, 0, 9), (10, 0, 4),
            (11, 0, 9), (12, 0, 4), (13, 0, 5), (14, 0, 5), (15, 0, 5), (16, 0, 4), (17, 0, 1),
            (18, 0, 3), (19, 0, 7), (20, 0, 6), (21, 0, 2), (22, 0, 4), (23, 0, 4), (24, 0, 4),
            (25, 0, 3), (26, 0, 3), (27, 0, 1), (28, 0, 3), (29, 0, 3), (30, 0, 3), (31, 0, 3),
            (32, 0, 4), (33, 0, 2), (34, 0, 2), (35, 0, 4), (36, 0, 2), (37, 0, 3), (38, 0, 3),
            (39, 0, 2), (40, 0, 2), (41, 0, 3), (42, 0, 2), (43, 0, 2), (44, 0, 1), (45, 0, 0),
            (46, 0, 0), (47, 0, 0), (48, 0, 1), (49, 0, 1), (50, 0, 0), (51, 0, 0), (55, 0, 1),
            (57, 0, 1), (60, 0, 1), (61, 0, 0), (64, 0, 0), (65, 0, 0), (66, 0, 0), (68, 0, 0)]
# The simulated broker's DEFAULT_VERSIONS.
SIM = [(0, 0, 11), (1, 0, 17), (2, 0, 9), (3, 0, 12), (17, 0, 1), (18, 0, 4), (19, 0, 7), (36, 0, 2)]


def api_versions(version, table, error=0, features=False):
    b = i16(error)
    flexible = version >= 3
    b += uvarint(len(table) + 1) if flexible else i32(len(table))
    for k, lo, hi in table:
        b += i16(k) + i16(lo) + i16(hi)
        if flexible:
            b += tagged([])
    if version >= 1:
        b += i32(0)
    if flexible:
        fields = []
        if features:
            feat = uvarint(2) + compact_string("metadata.version") + i16(1) + i16(19) + tagged([])
            fields = [(0, feat), (1, i64(42)),
                      (2, uvarint(2) + compact_string("metadata.version") + i16(19) + i16(19) + tagged([]))]
        b += tagged(fields)
    return b


def handshake(error, mechs):
    return i16(error) + i32(len(mechs)) + b"".join(string(m) for m in mechs)


def authenticate(version, error, message, auth, lifetime):
    b = i16(error)
    if version >= 2:
        b += (uvarint(0) if message is None else compact_string(message)) + compact_bytes(auth)
    else:
        b += nullable_string(message) + bytes_i32(auth)
    if version >= 1:
        b += i64(lifetime)
    if version >= 2:
        b += tagged([])
    return b


def frame(corr, hv, body):
    h = i32(corr) + (tagged([]) if hv >= 1 else b"")
    return i32(len(h) + len(body)) + h + body


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    for v in range(5):
        write("api_versions_response", f"kafka37-v{v}", b"\x00" + api_versions(v, KAFKA_37, features=True))
        write("api_versions_response", f"sim-v{v}", b"\x00" + api_versions(v, SIM))
    # KIP-511: UNSUPPORTED_VERSION (35) with a v0 body listing ApiVersions.
    write("api_versions_response", "unsupported-version", b"\x00" + api_versions(0, [(18, 0, 3)], error=35))
    # A built table (odd mode byte): error 0, version 3, three ranges.
    write("api_versions_response", "built", b"\x01\x03\x00\x00" + b"\x01\x03\x00\x00\x00\x09\x00" * 3 + b"\x00")

    write("response_header", "v0", i32(7) + b"body")
    write("response_header", "v1-empty-tags", i32(7) + tagged([]) + b"body")
    write("response_header", "v1-tags", i32(-3) + tagged([(0, b"ab"), (5, b"")]) + b"body")

    write("sasl_decoders", "handshake-ok", handshake(0, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]))
    write("sasl_decoders", "handshake-unsupported", handshake(33, ["GSSAPI"]))
    for v in range(3):
        write("sasl_decoders", f"authenticate-v{v}",
              authenticate(v, 0, None, b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 3_600_000))
        write("sasl_decoders", f"authenticate-v{v}-error",
              authenticate(v, 58, "Authentication failed: Invalid username or password", b"", 0))

    stream = frame(1, 0, b"\x00\x00\x00\x00") + frame(2, 1, b"\x00\x00") + frame(3, 0, b"")
    # frame_decoder: limit 3 (4096), no chunk ops (copy everything), the stream.
    write("frame_decoder", "three-frames", b"\x03\x00" + stream)
    # chunks: ZeroCopy(5) [discriminant 1], Drain [4], then copy the rest.
    zc = b"\x01" + struct.pack("<I", 0x40000000) + struct.pack("<H", 5)
    drain = b"\x01" + struct.pack("<I", 0xD0000000)
    write("frame_decoder", "zero-copy", b"\x03" + zc + drain + b"\x00" + stream)
    write("frame_decoder", "tls-alert", b"\x06\x00" + bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]))
    write("frame_decoder", "http", b"\x06\x00" + b"HTTP/1.1 400 Bad Request\r\n\r\n")

    # connection_bytes: limit 3, two Metadata v1 requests (api index 2, version 1, empty
    # body, expects a response, no header override), no chunk ops, end 2 (nothing),
    # then their responses (ids 1 and 2: the ApiVersions request was id 0).
    req = b"\x01" + b"\x02\x01" + b"\x00" + b"\x00" + b"\x00"
    head = b"\x03" + req + req + b"\x00" + b"\x00" + b"\x02"
    write("connection_bytes", "two-responses", head + frame(1, 0, b"meta") + frame(2, 0, b"data"))
    write("connection_bytes", "out-of-sync", head + frame(2, 0, b"meta"))
    write("connection_bytes", "unsolicited", head + frame(1, 0, b"") + frame(2, 0, b"") + frame(3, 0, b""))
    # Metadata v12 (flexible: response header v1): api index 2, version 12.
    flex = b"\x01" + b"\x02\x0c" + b"\x00" + b"\x00" + b"\x00"
    write("connection_bytes", "flexible-header", b"\x03" + flex + b"\x00\x00\x00" + frame(1, 1, b"\x00" * 8))


if __name__ == "__main__":
    main()
