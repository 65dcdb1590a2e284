//! SASL PLAIN (RFC 4616): one client message carrying the password in the
//! clear. Use it only over TLS (`SASL_SSL`).

use std::fmt;

use super::{Mechanism, MechanismFactory, SaslError, Secret, Step};

/// PLAIN credentials; makes a fresh exchange per authentication.
///
/// ```
/// use kafka_conn_core::sasl::{MechanismFactory, Plain};
/// let plain = Plain::new("alice", "alice-secret").with_authzid("bob");
/// assert_eq!(plain.name(), "PLAIN");
/// assert!(!format!("{plain:?}").contains("alice-secret"));
/// ```
#[derive(Clone)]
pub struct Plain {
    authzid: Option<String>,
    username: String,
    password: Secret,
}

impl Plain {
    /// Authenticates as `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            authzid: None,
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// Asks to act as `authzid` (RFC 4616 section 2 authorization identity).
    /// Kafka accepts it only when it equals the username.
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = Some(authzid.into());
        self
    }

    /// The authentication identity.
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl MechanismFactory for Plain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(PlainMechanism {
            creds: self.clone(),
            state: State::Initial,
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    Sent,
    Done,
    Failed,
}

/// One PLAIN exchange.
struct PlainMechanism {
    creds: Plain,
    state: State,
}

impl fmt::Debug for PlainMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainMechanism")
            .field("creds", &self.creds)
            .field("state", &self.state)
            .finish()
    }
}

impl PlainMechanism {
    fn initial_response(&self) -> Result<Vec<u8>, SaslError> {
        let Plain {
            authzid,
            username,
            password,
        } = &self.creds;
        let authzid = authzid.as_deref().unwrap_or("");
        // RFC 4616 section 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd,
        // each field built from UTF8-SAFE (any UTF-8 but NUL); NUL inside a
        // field would shift the fields the server reads.
        for (what, value) in [
            ("authzid", authzid),
            ("username", username.as_str()),
            ("password", password.expose()),
        ] {
            if value.contains('\0') {
                return Err(SaslError::InvalidCredential(format!(
                    "PLAIN {what} contains a NUL character (RFC 4616 section 2)"
                )));
            }
        }
        // RFC 4616 section 2: authcid = 1*SAFE and passwd = 1*SAFE; Kafka's
        // PlainSaslServer refuses empty ones too, so say so before the round trip.
        if username.is_empty() {
            return Err(SaslError::InvalidCredential(
                "PLAIN username is empty (RFC 4616 section 2)".into(),
            ));
        }
        if password.is_empty() {
            return Err(SaslError::InvalidCredential(
                "PLAIN password is empty (RFC 4616 section 2)".into(),
            ));
        }
        let mut msg =
            Vec::with_capacity(authzid.len() + username.len() + password.expose().len() + 2);
        msg.extend_from_slice(authzid.as_bytes());
        msg.push(0);
        msg.extend_from_slice(username.as_bytes());
        msg.push(0);
        msg.extend_from_slice(password.expose().as_bytes());
        Ok(msg)
    }
}

impl Mechanism for PlainMechanism {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (self.state, server_message) {
            (State::Initial, None) => match self.initial_response() {
                Ok(msg) => {
                    self.state = State::Sent;
                    Ok(Step::Send(msg))
                }
                Err(e) => {
                    self.state = State::Failed;
                    Err(e)
                }
            },
            // RFC 4616 section 2: PLAIN has a single client message; the
            // server answers only with the outcome, which in Kafka is an
            // empty `auth_bytes` (or an empty legacy v0 token).
            (State::Sent, Some([])) => {
                self.state = State::Done;
                Ok(Step::Done)
            }
            (State::Sent, Some(_)) => {
                self.state = State::Failed;
                Err(SaslError::Malformed(
                    "PLAIN: the server's reply must be empty (RFC 4616 section 2)".into(),
                ))
            }
            (State::Initial, Some(_)) => Err(SaslError::UnexpectedMessage(
                "PLAIN: server message before the client's",
            )),
            (State::Sent, None) => Err(SaslError::UnexpectedMessage(
                "PLAIN: initial response already sent",
            )),
            (State::Done, _) => Err(SaslError::UnexpectedMessage("PLAIN: exchange complete")),
            (State::Failed, _) => Err(SaslError::UnexpectedMessage("PLAIN: exchange failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Credential;
    use super::*;

    fn first(factory: &Plain) -> Result<Vec<u8>, SaslError> {
        let mut m = factory.start().unwrap();
        match m.step(None)? {
            Step::Send(b) => Ok(b),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn plain_message_format() {
        let p = Plain::new("alice", "s3cret");
        assert_eq!(p.name(), "PLAIN");
        assert_eq!(first(&p).unwrap(), b"\0alice\0s3cret");
        let p = p.with_authzid("alice");
        assert_eq!(first(&p).unwrap(), b"alice\0alice\0s3cret");
        // UTF-8 passes through untouched (no SASLprep in Kafka).
        assert_eq!(
            first(&Plain::new("Jürgen", "pässwörd")).unwrap(),
            "\0Jürgen\0pässwörd".as_bytes()
        );
    }

    #[test]
    fn plain_full_exchange() {
        let mut m = Plain::new("alice", "pw").start().unwrap();
        assert_eq!(m.name(), "PLAIN");
        assert!(matches!(m.step(None), Ok(Step::Send(_))));
        assert_eq!(
            m.step(None),
            Err(SaslError::UnexpectedMessage(
                "PLAIN: initial response already sent"
            ))
        );
        assert_eq!(m.step(Some(b"")), Ok(Step::Done));
        assert!(matches!(
            m.step(Some(b"")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        assert_eq!(
            m.provide_credential(Credential::Custom(bytes::Bytes::new())),
            Err(SaslError::UnexpectedCredential)
        );
    }

    #[test]
    fn plain_non_empty_reply_and_early_message() {
        let mut m = Plain::new("alice", "pw").start().unwrap();
        assert!(matches!(
            m.step(Some(b"x")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert!(matches!(m.step(None), Ok(Step::Send(_))));
        assert!(matches!(
            m.step(Some(b"junk")),
            Err(SaslError::Malformed(_))
        ));
        assert!(matches!(
            m.step(Some(b"")),
            Err(SaslError::UnexpectedMessage(_))
        ));
    }

    #[test]
    fn plain_rejects_nul_and_empty() {
        for p in [
            Plain::new("al\0ice", "pw"),
            Plain::new("alice", "p\0w"),
            Plain::new("alice", "pw").with_authzid("a\0"),
            Plain::new("", "pw"),
            Plain::new("alice", ""),
        ] {
            let err = first(&p).unwrap_err();
            assert!(matches!(err, SaslError::InvalidCredential(_)), "{err:?}");
        }
        // The error text never carries the password.
        let err = first(&Plain::new("alice", "p\0w-secret")).unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn plain_debug_redacts_password() {
        let p = Plain::new("alice", "correct horse").with_authzid("alice");
        let mut m = p.start().unwrap();
        let _ = m.step(None);
        for dbg in [format!("{p:?}"), format!("{p:#?}"), format!("{m:?}")] {
            assert!(!dbg.contains("correct horse"), "{dbg}");
            assert!(dbg.contains("alice"), "{dbg}");
        }
    }
}
