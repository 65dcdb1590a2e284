#!/usr/bin/env python3
"""Run librdkafka's mock Kafka cluster (rdkafka_mock.h) as a standalone process.

The confluent-kafka wheel bundles librdkafka as a shared library that exports
rd_kafka_mock_cluster_new(); we load it with ctypes, so nothing is compiled.
The mock speaks the Kafka protocol on 127.0.0.1 ephemeral ports (it picks them
itself).

Usage:
  mock_cluster.py BROKER_COUNT BOOTSTRAP_FILE
      (scripts/broker-up) writes the bootstrap list to BOOTSTRAP_FILE and runs
      until SIGTERM/SIGINT, then tears the cluster down.
  mock_cluster.py --control BROKER_COUNT
      (tests: kafka_conn_testsuite::mock) a private cluster steered through
      stdin/stdout: the first stdout line is "ready BOOTSTRAPS", then every
      command line on stdin gets exactly one reply line, "ok[ DATA]" or
      "err NAME: MESSAGE". End of stdin (the test process went away) stops it.

Commands (ids are broker ids, 1..BROKER_COUNT; -1 means every broker where the
C API allows it; codes are Kafka error codes, e.g. 6 NOT_LEADER_OR_FOLLOWER, or
librdkafka's negative ones, e.g. -195 _TRANSPORT, which makes the broker drop
the connection):
  bootstraps                         ok HOST:PORT,...  (broker 1 first)
  down ID | up ID                    rd_kafka_mock_broker_set_down / _set_up
  rtt ID MS                          rd_kafka_mock_broker_set_rtt (delay every response)
  rack ID RACK                       rd_kafka_mock_broker_set_rack
  leader TOPIC PARTITION ID          rd_kafka_mock_partition_set_leader (-1: no leader)
  errors API_KEY CODE...             rd_kafka_mock_push_request_errors_array: the next
                                     requests with API_KEY (to any broker) fail with
                                     these codes, one each, in order
  broker-errors ID API_KEY CODE:MS...  rd_kafka_mock_broker_push_request_error_rtts:
                                     the same on one broker, each delayed by MS
  clear-errors API_KEY               rd_kafka_mock_clear_request_errors
  topic-create TOPIC PARTITIONS REPLICATION   rd_kafka_mock_topic_create
  topic-error TOPIC CODE             rd_kafka_mock_topic_set_error (Metadata)
  decommission ID | add ID           rd_kafka_mock_broker_decommission / _add
  apiversion API_KEY MIN MAX         rd_kafka_mock_set_apiversion (-1 -1 disables it)
  ping                               ok
  quit                               ok, then the cluster is torn down
Signatures: rdkafka_mock.h of librdkafka 2.16 (the bundled build).
"""
import ctypes
import glob
import os
import signal
import sys
import threading
import time

import confluent_kafka  # only to locate the bundled librdkafka

vp, cp, i16, i32, cint, csize = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int16,
                                 ctypes.c_int32, ctypes.c_int, ctypes.c_size_t)
ERR = cint  # rd_kafka_resp_err_t is a C enum

# name: (argtypes after the cluster pointer, restype). The variadic
# rd_kafka_mock_broker_push_request_error_rtts is declared per call.
MOCK_FUNCS = {
    "rd_kafka_mock_cluster_new": None,
    "rd_kafka_mock_cluster_bootstraps": ([], cp),
    "rd_kafka_mock_cluster_destroy": ([], None),
    "rd_kafka_mock_broker_set_down": ([i32], ERR),
    "rd_kafka_mock_broker_set_up": ([i32], ERR),
    "rd_kafka_mock_broker_set_rtt": ([i32, cint], ERR),
    "rd_kafka_mock_broker_set_rack": ([i32, cp], ERR),
    "rd_kafka_mock_partition_set_leader": ([cp, i32, i32], ERR),
    "rd_kafka_mock_push_request_errors_array": ([i16, csize, ctypes.POINTER(ERR)], None),
    "rd_kafka_mock_clear_request_errors": ([i16], None),
    "rd_kafka_mock_topic_create": ([cp, cint, cint], ERR),
    "rd_kafka_mock_topic_set_error": ([cp, ERR], None),
    "rd_kafka_mock_broker_decommission": ([i32], ERR),
    "rd_kafka_mock_broker_add": ([i32], ERR),
    "rd_kafka_mock_set_apiversion": ([i16, i16, i16], ERR),
}


def load_librdkafka():
    pkg = os.path.dirname(confluent_kafka.__file__)
    # auditwheel puts the vendored libraries in site-packages/confluent_kafka.libs/
    candidates = sorted(glob.glob(os.path.join(pkg, os.pardir, "confluent_kafka.libs", "librdkafka*.so*")))
    if not candidates:
        sys.exit("mock_cluster: no librdkafka*.so bundled with confluent_kafka in %s" % pkg)
    lib = ctypes.CDLL(candidates[0])
    lib.rd_kafka_version_str.restype = cp
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, csize]
    lib.rd_kafka_conf_set.restype = cint
    lib.rd_kafka_new.argtypes = [cint, vp, cp, csize]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_err2name.argtypes = [ERR]
    lib.rd_kafka_err2name.restype = cp
    lib.rd_kafka_err2str.argtypes = [ERR]
    lib.rd_kafka_err2str.restype = cp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, cint]
    lib.rd_kafka_mock_cluster_new.restype = vp
    for name, sig in MOCK_FUNCS.items():
        if sig is not None:
            f = getattr(lib, name)  # AttributeError here = a librdkafka without it
            f.argtypes = [vp] + sig[0]
            f.restype = sig[1]
    return lib


class Control:
    """The line commands of --control mode, on one mock cluster."""

    def __init__(self, lib, mc):
        self.lib, self.mc = lib, mc

    def check(self, err):
        if err:
            raise CommandError("%s: %s" % (self.lib.rd_kafka_err2name(err).decode(),
                                           self.lib.rd_kafka_err2str(err).decode()))
        return "ok"

    def run(self, line):
        words = line.split()
        if not words:
            raise CommandError("BAD_COMMAND: empty line")
        cmd, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise CommandError("BAD_COMMAND: unknown command %r (see mock_cluster.py's docstring)" % cmd)
        try:
            return handler(*args)
        except (TypeError, ValueError) as e:
            raise CommandError("BAD_ARGUMENTS: %s %s: %s" % (cmd, " ".join(args), e)) from None

    def cmd_ping(self):
        return "ok"

    def cmd_bootstraps(self):
        return "ok " + self.lib.rd_kafka_mock_cluster_bootstraps(self.mc).decode()

    def cmd_down(self, broker):
        return self.check(self.lib.rd_kafka_mock_broker_set_down(self.mc, int(broker)))

    def cmd_up(self, broker):
        return self.check(self.lib.rd_kafka_mock_broker_set_up(self.mc, int(broker)))

    def cmd_rtt(self, broker, ms):
        return self.check(self.lib.rd_kafka_mock_broker_set_rtt(self.mc, int(broker), int(ms)))

    def cmd_rack(self, broker, rack):
        return self.check(self.lib.rd_kafka_mock_broker_set_rack(self.mc, int(broker), rack.encode()))

    def cmd_leader(self, topic, partition, broker):
        return self.check(self.lib.rd_kafka_mock_partition_set_leader(
            self.mc, topic.encode(), int(partition), int(broker)))

    def cmd_errors(self, api_key, *codes):
        if not codes:
            raise ValueError("no error codes")
        arr = (ERR * len(codes))(*(int(c) for c in codes))
        self.lib.rd_kafka_mock_push_request_errors_array(self.mc, int(api_key), len(codes), arr)
        return "ok"

    def cmd_broker_errors(self, broker, api_key, *pairs):
        if not pairs:
            raise ValueError("no CODE:MS pairs")
        flat = []
        for p in pairs:
            code, ms = p.split(":")
            flat += [ERR(int(code)), cint(int(ms))]
        # Variadic in C: declare the argument list for this many pairs. (On x86-64 and
        # aarch64 Linux, variadic int arguments are passed like fixed ones.)
        f = self.lib.rd_kafka_mock_broker_push_request_error_rtts
        f.argtypes = [vp, i32, i16, csize] + [ERR, cint] * len(pairs)
        f.restype = ERR
        return self.check(f(self.mc, int(broker), int(api_key), len(pairs), *flat))

    def cmd_clear_errors(self, api_key):
        self.lib.rd_kafka_mock_clear_request_errors(self.mc, int(api_key))
        return "ok"

    def cmd_topic_create(self, topic, partitions, replication):
        return self.check(self.lib.rd_kafka_mock_topic_create(
            self.mc, topic.encode(), int(partitions), int(replication)))

    def cmd_topic_error(self, topic, code):
        self.lib.rd_kafka_mock_topic_set_error(self.mc, topic.encode(), int(code))
        return "ok"

    def cmd_decommission(self, broker):
        return self.check(self.lib.rd_kafka_mock_broker_decommission(self.mc, int(broker)))

    def cmd_add(self, broker):
        return self.check(self.lib.rd_kafka_mock_broker_add(self.mc, int(broker)))

    def cmd_apiversion(self, api_key, lo, hi):
        return self.check(self.lib.rd_kafka_mock_set_apiversion(self.mc, int(api_key), int(lo), int(hi)))


class CommandError(Exception):
    pass


def serve_control(control, stop):
    """Answers stdin's commands on stdout until EOF or quit, then sets stop."""
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            print("ok", flush=True)
            break
        try:
            reply = control.run(line)
        except CommandError as e:
            reply = "err %s" % e
        except Exception as e:  # a bug here must not kill the channel silently
            reply = "err INTERNAL: %r" % e
        print(reply, flush=True)
    stop.append(1)


def main():
    control_mode = len(sys.argv) == 3 and sys.argv[1] == "--control"
    if not control_mode and len(sys.argv) != 3:
        sys.exit(__doc__)
    count = int(sys.argv[2] if control_mode else sys.argv[1])
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
          % (lib.rd_kafka_version_str().decode(), count, bootstraps),
          file=sys.stderr if control_mode else sys.stdout, flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    if control_mode:
        print("ready " + bootstraps, flush=True)
        threading.Thread(target=serve_control, args=(Control(lib, mc), stop), daemon=True).start()
    else:
        # Write atomically: broker-up polls for the file and must never read half of it.
        out = sys.argv[2]
        with open(out + ".tmp", "w") as f:
            f.write(bootstraps + "\n")
        os.replace(out + ".tmp", out)

    # Poll instead of signal.pause(): the signal may be delivered to one of
    # librdkafka's threads, which would not wake a paused main thread.
    while not stop:
        time.sleep(0.1)
    lib.rd_kafka_mock_cluster_destroy(mc)
    lib.rd_kafka_destroy(rk)
    print("mock_cluster: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
