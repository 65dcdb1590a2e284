#!/usr/bin/env python3
"""Run librdkafka's mock Kafka cluster (rdkafka_mock.h) as a standalone process.

The confluent-kafka wheel bundles librdkafka as a shared library that exports
rd_kafka_mock_cluster_new(); we load it with ctypes, so nothing is compiled.
The mock speaks the Kafka protocol on 127.0.0.1 ephemeral ports (it picks them
itself), so the bootstrap list is written to a file for broker-up to read.

Usage: mock_cluster.py BROKER_COUNT BOOTSTRAP_FILE
Runs until SIGTERM/SIGINT, then tears the cluster down.
"""
import ctypes
import glob
import os
import signal
import sys
import time

import confluent_kafka  # only to locate the bundled librdkafka


def load_librdkafka():
    pkg = os.path.dirname(confluent_kafka.__file__)
    # auditwheel puts the vendored libraries in site-packages/confluent_kafka.libs/
    candidates = sorted(glob.glob(os.path.join(pkg, os.pardir, "confluent_kafka.libs", "librdkafka*.so*")))
    if not candidates:
        sys.exit("mock_cluster: no librdkafka*.so bundled with confluent_kafka in %s" % pkg)
    lib = ctypes.CDLL(candidates[0])
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_version_str.restype = cp
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_conf_set.restype = ctypes.c_int
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_destroy.argtypes = [vp]
    return lib


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    count, out = int(sys.argv[1]), sys.argv[2]
    lib = load_librdkafka()

    err = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    # The client handle only hosts the mock cluster's threads. A dummy bootstrap
    # and log_level 3 keep it from logging "no bootstrap.servers" noise.
    for k, v in ((b"bootstrap.servers", b"127.0.0.1:9"), (b"log_level", b"3")):
        if lib.rd_kafka_conf_set(conf, k, v, err, len(err)) != 0:
            sys.exit("mock_cluster: conf %s: %s" % (k.decode(), err.value.decode()))
    rk = lib.rd_kafka_new(0, conf, err, len(err))  # 0 = RD_KAFKA_PRODUCER
    if not rk:
        sys.exit("mock_cluster: rd_kafka_new: %s" % err.value.decode())
    mc = lib.rd_kafka_mock_cluster_new(rk, count)
    if not mc:
        sys.exit("mock_cluster: rd_kafka_mock_cluster_new failed")
    bootstraps = lib.rd_kafka_mock_cluster_bootstraps(mc).decode()
    print("librdkafka %s mock cluster with %d broker(s): %s"
          % (lib.rd_kafka_version_str().decode(), count, bootstraps), flush=True)

    # Write atomically: broker-up polls for the file and must never read half of it.
    with open(out + ".tmp", "w") as f:
        f.write(bootstraps + "\n")
    os.replace(out + ".tmp", out)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    # Poll instead of signal.pause(): the signal may be delivered to one of
    # librdkafka's threads, which would not wake a paused main thread.
    while not stop:
        time.sleep(0.2)
    lib.rd_kafka_mock_cluster_destroy(mc)
    lib.rd_kafka_destroy(rk)
    print("mock_cluster: stopped", flush=True)


if __name__ == "__main__":
    main()
