//! `kconn api-versions --probe-version`: a guess of the Kafka release from
//! the API version ranges a broker advertises.
//!
//! Every Apache Kafka release answers ApiVersions with a fixed set of
//! ranges, so comparing a broker's answer with each release's tells the
//! release: exactly when the broker is an Apache Kafka broker of a release
//! in the table, roughly otherwise. The ranges of each release come from
//! kafka-python's `kafka/protocol/broker_api_versions.py`
//! (github.com/dpkp/kafka-python), whose entries from 0.10.1 on were
//! copied from real brokers' ApiVersions responses (0.10.0's are written
//! by hand there). 4.0's are a KRaft broker's; the others' a
//! ZooKeeper-mode broker's. Kafka's own record of the same facts is the
//! `validVersions` of each message definition in
//! `clients/src/main/resources/common/message/` at each release tag.
//!
//! What a broker lists also depends on how it runs: a ZooKeeper-mode
//! broker lists the inter-broker APIs (LeaderAndIsr, StopReplica,
//! UpdateMetadata, ControlledShutdown, AlterPartition, Envelope,
//! AllocateProducerIds) that a KRaft broker does not, so those keys are
//! left out of the comparison. Other software speaking Kafka (Redpanda,
//! tansu, librdkafka's mock cluster, proxies) advertises its own mix: the
//! guess then says that no release matches well, with the closest one.

use std::collections::BTreeMap;

use serde::Serialize;

/// Each release with the ranges its brokers advertise (`key:min-max`).
const RELEASES: &[(&str, &str)] = &[
    ("0.10.0", "0:0-2 1:0-2 2:0-0 3:0-1 4:0-0 5:0-0 6:0-2 7:1-1 8:0-2 9:0-1 10:0-0 11:0-0 12:0-0 13:0-0 14:0-0 15:0-0 16:0-0 17:0-0 18:0-0"),
    ("0.10.1", "0:0-2 1:0-3 2:0-1 3:0-2 4:0-0 5:0-0 6:0-2 7:1-1 8:0-2 9:0-1 10:0-0 11:0-1 12:0-0 13:0-0 14:0-0 15:0-0 16:0-0 17:0-0 18:0-0 19:0-0 20:0-0"),
    ("0.10.2", "0:0-2 1:0-3 2:0-1 3:0-2 4:0-0 5:0-0 6:0-3 7:1-1 8:0-2 9:0-2 10:0-0 11:0-1 12:0-0 13:0-0 14:0-0 15:0-0 16:0-0 17:0-0 18:0-0 19:0-1 20:0-0"),
    ("0.11", "0:0-3 1:0-5 2:0-2 3:0-4 4:0-0 5:0-0 6:0-3 7:1-1 8:0-3 9:0-3 10:0-1 11:0-2 12:0-1 13:0-1 14:0-1 15:0-1 16:0-1 17:0-0 18:0-1 19:0-2 20:0-1 21:0-0 22:0-0 23:0-0 24:0-0 25:0-0 26:0-0 27:0-0 28:0-0 29:0-0 30:0-0 31:0-0 32:0-0 33:0-0"),
    ("1.0", "0:0-5 1:0-6 2:0-2 3:0-5 4:0-1 5:0-0 6:0-4 7:0-1 8:0-3 9:0-3 10:0-1 11:0-2 12:0-1 13:0-1 14:0-1 15:0-1 16:0-1 17:0-1 18:0-1 19:0-2 20:0-1 21:0-0 22:0-0 23:0-0 24:0-0 25:0-0 26:0-0 27:0-0 28:0-0 29:0-0 30:0-0 31:0-0 32:0-0 33:0-0 34:0-0 35:0-0 36:0-0 37:0-0"),
    ("1.1", "0:0-5 1:0-7 2:0-2 3:0-5 4:0-1 5:0-0 6:0-4 7:0-1 8:0-3 9:0-3 10:0-1 11:0-2 12:0-1 13:0-1 14:0-1 15:0-1 16:0-1 17:0-1 18:0-1 19:0-2 20:0-1 21:0-0 22:0-0 23:0-0 24:0-0 25:0-0 26:0-0 27:0-0 28:0-0 29:0-0 30:0-0 31:0-0 32:0-1 33:0-0 34:0-0 35:0-0 36:0-0 37:0-0 38:0-0 39:0-0 40:0-0 41:0-0 42:0-0"),
    ("2.0", "0:0-6 1:0-8 2:0-3 3:0-6 4:0-1 5:0-0 6:0-4 7:0-1 8:0-4 9:0-4 10:0-2 11:0-3 12:0-2 13:0-2 14:0-2 15:0-2 16:0-2 17:0-1 18:0-2 19:0-3 20:0-2 21:0-1 22:0-1 23:0-1 24:0-1 25:0-1 26:0-1 27:0-0 28:0-1 29:0-1 30:0-1 31:0-1 32:0-2 33:0-1 34:0-1 35:0-1 36:0-0 37:0-1 38:0-1 39:0-1 40:0-1 41:0-1 42:0-1"),
    ("2.1", "0:0-7 1:0-10 2:0-4 3:0-7 4:0-1 5:0-0 6:0-4 7:0-1 8:0-6 9:0-5 10:0-2 11:0-3 12:0-2 13:0-2 14:0-2 15:0-2 16:0-2 17:0-1 18:0-2 19:0-3 20:0-3 21:0-1 22:0-1 23:0-2 24:0-1 25:0-1 26:0-1 27:0-0 28:0-2 29:0-1 30:0-1 31:0-1 32:0-2 33:0-1 34:0-1 35:0-1 36:0-0 37:0-1 38:0-1 39:0-1 40:0-1 41:0-1 42:0-1"),
    ("2.2", "0:0-7 1:0-10 2:0-5 3:0-7 4:0-2 5:0-1 6:0-5 7:0-2 8:0-6 9:0-5 10:0-2 11:0-4 12:0-2 13:0-2 14:0-2 15:0-2 16:0-2 17:0-1 18:0-2 19:0-3 20:0-3 21:0-1 22:0-1 23:0-2 24:0-1 25:0-1 26:0-1 27:0-0 28:0-2 29:0-1 30:0-1 31:0-1 32:0-2 33:0-1 34:0-1 35:0-1 36:0-1 37:0-1 38:0-1 39:0-1 40:0-1 41:0-1 42:0-1 43:0-0"),
    ("2.3", "0:0-7 1:0-11 2:0-5 3:0-8 4:0-2 5:0-1 6:0-5 7:0-2 8:0-7 9:0-5 10:0-2 11:0-5 12:0-3 13:0-2 14:0-3 15:0-3 16:0-2 17:0-1 18:0-2 19:0-3 20:0-3 21:0-1 22:0-1 23:0-3 24:0-1 25:0-1 26:0-1 27:0-0 28:0-2 29:0-1 30:0-1 31:0-1 32:0-2 33:0-1 34:0-1 35:0-1 36:0-1 37:0-1 38:0-1 39:0-1 40:0-1 41:0-1 42:0-1 43:0-0 44:0-0"),
    ("2.4", "0:0-8 1:0-11 2:0-5 3:0-9 4:0-4 5:0-2 6:0-6 7:0-3 8:0-8 9:0-6 10:0-3 11:0-6 12:0-4 13:0-4 14:0-4 15:0-5 16:0-3 17:0-1 18:0-3 19:0-5 20:0-4 21:0-1 22:0-2 23:0-3 24:0-1 25:0-1 26:0-1 27:0-0 28:0-2 29:0-1 30:0-1 31:0-1 32:0-2 33:0-1 34:0-1 35:0-1 36:0-1 37:0-1 38:0-2 39:0-1 40:0-1 41:0-1 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0"),
    ("2.5", "0:0-8 1:0-11 2:0-5 3:0-9 4:0-4 5:0-2 6:0-6 7:0-3 8:0-8 9:0-7 10:0-3 11:0-7 12:0-4 13:0-4 14:0-5 15:0-5 16:0-3 17:0-1 18:0-3 19:0-5 20:0-4 21:0-1 22:0-3 23:0-3 24:0-1 25:0-1 26:0-1 27:0-0 28:0-3 29:0-2 30:0-2 31:0-2 32:0-2 33:0-1 34:0-1 35:0-1 36:0-2 37:0-2 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0"),
    ("2.6", "0:0-8 1:0-11 2:0-5 3:0-9 4:0-4 5:0-3 6:0-6 7:0-3 8:0-8 9:0-7 10:0-3 11:0-7 12:0-4 13:0-4 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-5 20:0-4 21:0-2 22:0-3 23:0-3 24:0-1 25:0-1 26:0-1 27:0-0 28:0-3 29:0-2 30:0-2 31:0-2 32:0-3 33:0-1 34:0-1 35:0-2 36:0-2 37:0-2 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-0 49:0-0"),
    ("2.7", "0:0-8 1:0-12 2:0-5 3:0-9 4:0-4 5:0-3 6:0-6 7:0-3 8:0-8 9:0-7 10:0-3 11:0-7 12:0-4 13:0-4 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-6 20:0-5 21:0-2 22:0-4 23:0-3 24:0-2 25:0-2 26:0-2 27:0-0 28:0-3 29:0-2 30:0-2 31:0-2 32:0-3 33:0-1 34:0-1 35:0-2 36:0-2 37:0-3 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-0 49:0-0 50:0-0 51:0-0 56:0-0 57:0-0"),
    ("2.8", "0:0-9 1:0-12 2:0-6 3:0-11 4:0-5 5:0-3 6:0-7 7:0-3 8:0-8 9:0-7 10:0-3 11:0-7 12:0-4 13:0-4 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-2 30:0-2 31:0-2 32:0-4 33:0-2 34:0-2 35:0-2 36:0-2 37:0-3 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-0 57:0-0 60:0-0 61:0-0"),
    ("3.0", "0:0-9 1:0-12 2:0-7 3:0-11 4:0-5 5:0-3 6:0-7 7:0-3 8:0-8 9:0-8 10:0-4 11:0-7 12:0-4 13:0-4 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-2 30:0-2 31:0-2 32:0-4 33:0-2 34:0-2 35:0-2 36:0-2 37:0-3 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-0 57:0-0 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.1", "0:0-9 1:0-13 2:0-7 3:0-12 4:0-5 5:0-3 6:0-7 7:0-3 8:0-8 9:0-8 10:0-4 11:0-7 12:0-4 13:0-4 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-2 30:0-2 31:0-2 32:0-4 33:0-2 34:0-2 35:0-2 36:0-2 37:0-3 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-0 57:0-0 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.2", "0:0-9 1:0-13 2:0-7 3:0-12 4:0-6 5:0-3 6:0-7 7:0-3 8:0-8 9:0-8 10:0-4 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-2 30:0-2 31:0-2 32:0-4 33:0-2 34:0-2 35:0-3 36:0-2 37:0-3 38:0-2 39:0-2 40:0-2 41:0-2 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-1 57:0-0 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.3", "0:0-9 1:0-13 2:0-7 3:0-12 4:0-6 5:0-3 6:0-7 7:0-3 8:0-8 9:0-8 10:0-4 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-2 57:0-1 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.4", "0:0-9 1:0-13 2:0-7 3:0-12 4:0-7 5:0-4 6:0-8 7:0-3 8:0-8 9:0-8 10:0-4 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-2 57:0-1 58:0-0 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.5", "0:0-9 1:0-15 2:0-8 3:0-12 4:0-7 5:0-4 6:0-8 7:0-3 8:0-8 9:0-8 10:0-4 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-3 25:0-3 26:0-3 27:0-1 28:0-3 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-3 57:0-1 58:0-0 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.6", "0:0-9 1:0-15 2:0-8 3:0-12 4:0-7 5:0-4 6:0-8 7:0-3 8:0-8 9:0-8 10:0-4 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-4 25:0-3 26:0-3 27:0-1 28:0-3 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-3 57:0-1 58:0-0 60:0-0 61:0-0 65:0-0 66:0-0 67:0-0"),
    ("3.7", "0:0-10 1:0-16 2:0-8 3:0-12 4:0-7 5:0-4 6:0-8 7:0-3 8:0-9 9:0-9 10:0-4 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-4 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-4 23:0-4 24:0-4 25:0-3 26:0-3 27:0-1 28:0-3 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-3 57:0-1 58:0-0 60:0-1 61:0-0 65:0-0 66:0-0 67:0-0 68:0-0"),
    ("3.8", "0:0-11 1:0-16 2:0-8 3:0-12 4:0-7 5:0-4 6:0-8 7:0-3 8:0-9 9:0-9 10:0-5 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-5 17:0-1 18:0-3 19:0-7 20:0-6 21:0-2 22:0-5 23:0-4 24:0-5 25:0-4 26:0-4 27:0-1 28:0-4 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-3 57:0-1 58:0-0 60:0-1 61:0-0 65:0-0 66:0-1 67:0-0 68:0-0 69:0-0"),
    ("3.9", "0:0-11 1:0-17 2:0-9 3:0-12 4:0-7 5:0-4 6:0-8 7:0-3 8:0-9 9:0-9 10:0-6 11:0-9 12:0-4 13:0-5 14:0-5 15:0-5 16:0-5 17:0-1 18:0-4 19:0-7 20:0-6 21:0-2 22:0-5 23:0-4 24:0-5 25:0-4 26:0-4 27:0-1 28:0-4 29:0-3 30:0-3 31:0-3 32:0-4 33:0-2 34:0-2 35:0-4 36:0-2 37:0-3 38:0-3 39:0-2 40:0-2 41:0-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 56:0-3 57:0-1 58:0-0 60:0-1 61:0-0 65:0-0 66:0-1 67:0-0 68:0-0 69:0-0"),
    ("4.0", "0:0-12 1:4-17 2:1-10 3:0-13 8:2-9 9:1-9 10:0-6 11:2-9 12:0-4 13:0-5 14:0-5 15:0-6 16:0-5 17:0-1 18:0-4 19:2-7 20:1-6 21:0-2 22:0-5 23:2-4 24:0-5 25:0-4 26:0-5 27:1-1 28:0-5 29:1-3 30:1-3 31:1-3 32:1-4 33:0-2 34:1-2 35:1-4 36:0-2 37:0-3 38:1-3 39:1-2 40:1-2 41:1-3 42:0-2 43:0-2 44:0-1 45:0-0 46:0-0 47:0-0 48:0-1 49:0-1 50:0-0 51:0-0 55:0-2 57:0-2 60:0-2 61:0-0 64:0-0 65:0-0 66:0-1 68:0-1 69:0-1 74:0-0 75:0-0 80:0-0 81:0-0"),
];

/// Inter-broker APIs that ZooKeeper-mode brokers list and KRaft brokers do
/// not (LeaderAndIsr 4, StopReplica 5, UpdateMetadata 6,
/// ControlledShutdown 7, AlterPartition 56, Envelope 58,
/// AllocateProducerIds 67): not compared.
const MODE_DEPENDENT: &[i16] = &[4, 5, 6, 7, 56, 58, 67];

/// A share of matching APIs from which the closest release is a "close"
/// guess (the rest: patch releases, a feature switched off).
const CLOSE: f64 = 0.9;

/// How sure the guess is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Confidence {
    /// Every compared API has the release's range.
    Exact,
    /// At least 90 % of them do.
    Close,
    /// The broker is newer than the newest release in the table: it has
    /// every API of that release, some with higher versions or new ones.
    Newer,
    /// No release matches well: probably not Apache Kafka.
    Poor,
}

/// The guess for one broker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ReleaseGuess {
    /// The closest release (`3.9`; `3.3 or 3.4` when their client APIs
    /// are the same), or the newest known for `newer`.
    pub(crate) release: String,
    pub(crate) confidence: Confidence,
    /// APIs whose range is the release's.
    pub(crate) matching: usize,
    /// APIs compared (the union of both lists, less the mode-dependent ones).
    pub(crate) compared: usize,
    /// Up to eight APIs that differ: `Fetch v0-17 (3.9: v0-16)`.
    pub(crate) differences: Vec<String>,
}

impl ReleaseGuess {
    /// One line for the text report.
    pub(crate) fn line(&self) -> String {
        let share = format!("{} of {} APIs", self.matching, self.compared);
        match self.confidence {
            Confidence::Exact => format!(
                "Apache Kafka {} (exact: {share} have its version ranges)",
                self.release
            ),
            Confidence::Close => format!(
                "probably Apache Kafka {} (close: {share} have its version ranges)",
                self.release
            ),
            Confidence::Newer => format!(
                "newer than Apache Kafka {} (the newest release kconn knows): it has every API of {} and newer versions",
                self.release, self.release
            ),
            Confidence::Poor => format!(
                "no Apache Kafka release matches well (the closest is {}, with {share}): another implementation of the protocol?",
                self.release
            ),
        }
    }
}

type Ranges = BTreeMap<i16, (i16, i16)>;

fn parse(table: &str) -> Ranges {
    table
        .split_whitespace()
        .filter_map(|item| {
            let (key, range) = item.split_once(':')?;
            let (min, max) = range.split_once('-')?;
            Some((key.parse().ok()?, (min.parse().ok()?, max.parse().ok()?)))
        })
        .collect()
}

fn name(key: i16) -> String {
    kafka_conn_tokio::core::ApiKey(key)
        .name()
        .map_or_else(|| format!("key {key}"), str::to_owned)
}

/// How one release compares with the broker.
struct Score {
    release: &'static str,
    share: f64,
    /// Matching mode-dependent APIs, when the broker lists them (a
    /// ZooKeeper-mode broker): the tie-breaker between releases whose
    /// client APIs are the same (3.3 and 3.4).
    mode_matching: usize,
    matching: usize,
    compared: usize,
    differences: Vec<String>,
}

fn score(release: &'static str, table: &str, all: &Ranges, ours: &Ranges) -> Score {
    let full = parse(table);
    let theirs: Ranges = full
        .iter()
        .filter(|(k, _)| !MODE_DEPENDENT.contains(k))
        .map(|(k, r)| (*k, *r))
        .collect();
    let keys: std::collections::BTreeSet<i16> = ours.keys().chain(theirs.keys()).copied().collect();
    let mut matching = 0;
    let mut differences = Vec::new();
    for k in &keys {
        match (ours.get(k), theirs.get(k)) {
            (Some(a), Some(b)) if a == b => matching += 1,
            (a, b) => {
                let show = |r: Option<&(i16, i16)>| {
                    r.map_or("absent".to_owned(), |(x, y)| format!("v{x}-{y}"))
                };
                if differences.len() < 8 {
                    differences.push(format!("{} {} ({release}: {})", name(*k), show(a), show(b)));
                }
            }
        }
    }
    let mode_matching = MODE_DEPENDENT
        .iter()
        .filter(|k| all.get(k).is_some() && all.get(k) == full.get(k))
        .count();
    Score {
        release,
        share: matching as f64 / keys.len().max(1) as f64,
        mode_matching,
        matching,
        compared: keys.len(),
        differences,
    }
}

/// Compares `broker` (key, min, max) with every release; the best match.
pub(crate) fn guess(broker: &[(i16, i16, i16)]) -> Option<ReleaseGuess> {
    let all: Ranges = broker
        .iter()
        .map(|&(k, min, max)| (k, (min, max)))
        .collect();
    let ours: Ranges = all
        .iter()
        .filter(|(k, _)| !MODE_DEPENDENT.contains(k))
        .map(|(k, r)| (*k, *r))
        .collect();
    if ours.is_empty() {
        return None;
    }
    let scores: Vec<Score> = RELEASES
        .iter()
        .map(|(release, table)| score(release, table, &all, &ours))
        .collect();
    let top = scores.iter().map(|s| s.share).fold(0.0, f64::max);
    let tied: Vec<&Score> = scores.iter().filter(|s| s.share == top).collect();
    let best_mode = tied.iter().map(|s| s.mode_matching).max().unwrap_or(0);
    let tied: Vec<&Score> = tied
        .into_iter()
        .filter(|s| s.mode_matching == best_mode)
        .collect();
    // The newest of the tied releases carries the differences.
    let best = tied.last()?;
    let release = tied
        .iter()
        .map(|s| s.release)
        .collect::<Vec<_>>()
        .join(" or ");
    let newest = RELEASES.last()?;
    let newest_ranges = parse(newest.1);
    // Newer than the table: every API of the newest release present, none
    // lower, at least one higher or new.
    let newer = newest_ranges
        .iter()
        .filter(|(k, _)| !MODE_DEPENDENT.contains(k))
        .all(|(k, (_, max))| ours.get(k).is_some_and(|(_, m)| m >= max))
        && ours
            .iter()
            .any(|(k, (_, m))| newest_ranges.get(k).is_none_or(|(_, max)| m > max));
    let (release, confidence) = if best.matching == best.compared {
        (release, Confidence::Exact)
    } else if newer {
        (newest.0.to_owned(), Confidence::Newer)
    } else if top >= CLOSE {
        (release, Confidence::Close)
    } else {
        (release, Confidence::Poor)
    };
    Some(ReleaseGuess {
        release,
        confidence,
        matching: best.matching,
        compared: best.compared,
        differences: best.differences.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(name: &str) -> Vec<(i16, i16, i16)> {
        let table = RELEASES.iter().find(|(n, _)| *n == name).unwrap().1;
        parse(table)
            .into_iter()
            .map(|(k, (min, max))| (k, min, max))
            .collect()
    }

    #[test]
    fn the_table_is_ordered_and_parses_whole() {
        for (name, table) in RELEASES {
            assert_eq!(
                parse(table).len(),
                table.split_whitespace().count(),
                "{name}"
            );
            // ApiVersions (18) is in every release that answers it.
            assert!(parse(table).contains_key(&18), "{name}");
        }
        let versions: Vec<Vec<u32>> = RELEASES
            .iter()
            .map(|(n, _)| n.split('.').map(|p| p.parse().unwrap()).collect())
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    }

    #[test]
    fn every_release_is_recognised_exactly() {
        for (name, _) in RELEASES {
            let g = guess(&release(name)).unwrap();
            // 3.0 and 3.1 differ only in Fetch and ListOffsets; 2.5/2.6 etc.
            // are all distinct.
            assert_eq!(
                (g.release.as_str(), g.confidence),
                (*name, Confidence::Exact),
                "{g:?}"
            );
        }
    }

    #[test]
    fn a_kraft_broker_without_the_inter_broker_apis_is_the_same_release() {
        let kraft: Vec<_> = release("3.9")
            .into_iter()
            .filter(|(k, _, _)| !MODE_DEPENDENT.contains(k))
            .collect();
        let g = guess(&kraft).unwrap();
        assert_eq!(
            (g.release.as_str(), g.confidence),
            ("3.9", Confidence::Exact)
        );
        // 3.3 and 3.4 differ only in inter-broker APIs: without them, both.
        let kraft: Vec<_> = release("3.4")
            .into_iter()
            .filter(|(k, _, _)| !MODE_DEPENDENT.contains(k))
            .collect();
        let g = guess(&kraft).unwrap();
        assert_eq!(
            (g.release.as_str(), g.confidence),
            ("3.3 or 3.4", Confidence::Exact)
        );
    }

    #[test]
    fn one_api_off_is_close_and_names_the_difference() {
        let mut b = release("3.8");
        // Produce v0-11 → v0-12: as if a patch release raised one API.
        b.iter_mut().find(|(k, _, _)| *k == 0).unwrap().2 = 10;
        let g = guess(&b).unwrap();
        assert_eq!(
            (g.release.as_str(), g.confidence),
            ("3.8", Confidence::Close),
            "{g:?}"
        );
        assert_eq!(g.differences, ["Produce v0-10 (3.8: v0-11)"]);
        assert!(
            g.line().starts_with("probably Apache Kafka 3.8 (close: "),
            "{}",
            g.line()
        );
    }

    #[test]
    fn newer_than_the_table_says_so() {
        let mut b = release("4.0");
        b.iter_mut().find(|(k, _, _)| *k == 1).unwrap().2 = 18;
        b.push((76, 0, 0));
        let g = guess(&b).unwrap();
        assert_eq!(
            (g.release.as_str(), g.confidence),
            ("4.0", Confidence::Newer),
            "{g:?}"
        );
    }

    #[test]
    fn a_mix_no_release_has_is_poor() {
        let b = [
            (0, 0, 3),
            (1, 0, 13),
            (3, 0, 1),
            (18, 0, 4),
            (36, 0, 2),
            (75, 0, 0),
        ];
        let g = guess(&b).unwrap();
        assert_eq!(g.confidence, Confidence::Poor, "{g:?}");
        assert!(g.line().starts_with("no Apache Kafka release matches well"));
        assert!(guess(&[]).is_none());
    }
}
