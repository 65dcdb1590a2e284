//! Names of the Kafka error codes a connection layer meets, for messages.

/// The protocol name of a Kafka error code, e.g. `SASL_AUTHENTICATION_FAILED`
/// for 58; `"UNKNOWN"` for codes this table does not list.
pub fn error_code_name(code: i16) -> &'static str {
    match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        33 => "UNSUPPORTED_SASL_MECHANISM",
        34 => "ILLEGAL_SASL_STATE",
        35 => "UNSUPPORTED_VERSION",
        36 => "TOPIC_ALREADY_EXISTS",
        42 => "INVALID_REQUEST",
        58 => "SASL_AUTHENTICATION_FAILED",
        _ => "UNKNOWN",
    }
}

/// UNSUPPORTED_SASL_MECHANISM.
pub(crate) const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// UNSUPPORTED_VERSION.
pub(crate) const UNSUPPORTED_VERSION: i16 = 35;
