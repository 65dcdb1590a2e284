//! SASL GSSAPI (Kerberos V5, RFC 4752), relayed to the application: see [`Gssapi`].

use std::fmt;

use bytes::Bytes;

use super::{Credential, CredentialRequest, Mechanism, MechanismFactory, SaslError, Step};

/// The application's answer to a GSSAPI token request.
///
/// `Debug` shows only the token's length: Kerberos tokens carry tickets.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GssapiStep {
    /// Send this token to the server (possibly empty); the server's answer
    /// comes as the next request.
    Send(Vec<u8>),
    /// Send this token, the client's last (the wrapped security-layer
    /// reply of RFC 4752 section 3.1): the exchange ends without another
    /// request (see [`Step::SendLast`] for when exactly).
    SendLast(Vec<u8>),
    /// The client side is complete; the exchange is done.
    Done,
}

impl fmt::Debug for GssapiStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GssapiStep::Send(token) => write!(f, "Send(<{} bytes redacted>)", token.len()),
            GssapiStep::SendLast(token) => {
                write!(f, "SendLast(<{} bytes redacted>)", token.len())
            }
            GssapiStep::Done => f.write_str("Done"),
        }
    }
}

/// The GSSAPI factory: every exchange relays its tokens to the application.
///
/// The core links no Kerberos library: it cannot block on a KDC, and a
/// GSS-API binding is a system dependency many users do not want. The
/// mechanism therefore relays every token. Each time it needs the next client
/// token it returns [`Step::NeedCredential`] with
/// [`CredentialRequest::GssapiToken`] (the server's last token, `None` at the
/// start); the application feeds that to its Kerberos library and answers
/// with [`Credential::Gssapi`]: [`GssapiStep::Send`] with the next token,
/// [`GssapiStep::SendLast`] with its last one, or [`GssapiStep::Done`] once
/// its side is complete.
///
/// # Wiring a Kerberos library
///
/// With a GSS-API binding such as `libgssapi` or `cross-krb5`, the
/// application keeps one client context per authentication, created for the
/// service principal `kafka@<broker host>` (`sasl.kerberos.service.name`
/// `@` host, `GSS_C_NT_HOSTBASED_SERVICE`) and answers the requests in three
/// phases (RFC 4752 section 3.1):
///
/// 1. **Context establishment.** While the context is not complete, call
///    `init_sec_context` (libgssapi: `ClientCtx::step`) with the server
///    token (none the first time) and answer `Send(output token)`. When the
///    call that completes the context produces no output token (the usual
///    case after the server's AP-REP), answer `Send` with an empty token:
///    RFC 4752 section 3.1 has the client send an empty response then.
/// 2. **Security layer.** After the context is complete, the server sends a
///    wrapped 4-byte message: `unwrap` it; byte 0 is the bitmask of security
///    layers the server offers, bytes 1-3 its maximum message size. Kafka
///    uses no SASL security layer (TLS does that job), so reply with
///    `wrap([0x01, 0, 0, 0] ++ authzid)`, without confidentiality (`0x01`
///    = "no security layer", and RFC 4752 requires a zero maximum size with
///    it; `authzid` is usually empty) and answer `SendLast(wrapped)`.
/// 3. **Completion.** That reply is the client's last message, and the
///    exchange ends without another request: with SaslAuthenticate, when
///    the broker's (empty) response to it arrives; with the legacy
///    SaslHandshake v0 flow, as soon as it is written, because Apache
///    Kafka's broker sends nothing after it there (its GSSAPI server has no
///    final token, and the legacy flow sends a token only when there is
///    one). Answering `Send(wrapped)` instead makes the connection wait for
///    one more server token, to be answered [`GssapiStep::Done`]: right for a
///    server that sends a final token, and a wait until the handshake
///    deadline with Kafka's legacy flow.
///
/// A sketch with `libgssapi` (not a dependency of this crate):
///
/// ```ignore
/// use kafka_conn_core::sasl::{Credential, CredentialRequest, GssapiStep};
/// use libgssapi::{context::{ClientCtx, CtxFlags, SecurityContext}, name::Name, oid::*};
///
/// struct Kerberos { ctx: ClientCtx, layer_done: bool }
///
/// impl Kerberos {
///     fn new(host: &str) -> Result<Self, libgssapi::error::Error> {
///         let service = Name::new(format!("kafka@{host}").as_bytes(), Some(&GSS_NT_HOSTBASED_SERVICE))?;
///         let ctx = ClientCtx::new(None, service, CtxFlags::GSS_C_MUTUAL_FLAG, Some(&GSS_MECH_KRB5));
///         Ok(Self { ctx, layer_done: false })
///     }
///
///     /// Answers one `CredentialRequest::GssapiToken { server_token }`.
///     fn answer(&mut self, server_token: Option<&[u8]>) -> Result<Credential, libgssapi::error::Error> {
///         let step = if !self.ctx.is_complete() {
///             // Phase 1: init_sec_context.
///             let out = self.ctx.step(server_token, None)?;
///             GssapiStep::Send(out.map(|t| t.to_vec()).unwrap_or_default())
///         } else if !self.layer_done {
///             // Phase 2: RFC 4752 section 3.1 security-layer negotiation.
///             let offer = self.ctx.unwrap(server_token.unwrap_or_default())?;
///             assert!(offer.len() == 4 && offer[0] & 0x01 != 0, "server must offer 'no layer'");
///             self.layer_done = true;
///             // Phase 3: this is the last client message.
///             GssapiStep::SendLast(self.ctx.wrap(false, &[0x01, 0, 0, 0])?.to_vec())
///         } else {
///             unreachable!("the exchange ends with the reply")
///         };
///         Ok(Credential::Gssapi(step))
///     }
/// }
/// ```
///
/// Run the Kerberos calls off the thread that drives the connection if they
/// may block on the KDC; the connection simply waits for the answer.
#[derive(Debug, Clone, Default)]
pub struct Gssapi {
    _private: (),
}

impl Gssapi {
    /// A factory for relayed GSSAPI exchanges.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MechanismFactory for Gssapi {
    fn name(&self) -> &str {
        "GSSAPI"
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(GssapiMechanism {
            state: State::Initial,
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing happened yet.
    Initial,
    /// A token was asked of the application.
    AwaitingToken,
    /// A token was sent; waiting for the server's answer.
    Sent,
    Done,
}

/// One relayed GSSAPI exchange. Holds no token.
#[derive(Debug)]
struct GssapiMechanism {
    state: State,
}

impl Mechanism for GssapiMechanism {
    fn name(&self) -> &str {
        "GSSAPI"
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        match (self.state, server_message) {
            // RFC 4752 section 3.1: the client sends first (the output of
            // its first init_sec_context call).
            (State::Initial, None) => {
                self.state = State::AwaitingToken;
                Ok(Step::NeedCredential(CredentialRequest::GssapiToken {
                    server_token: None,
                }))
            }
            // Every server token goes to the application, whose Kerberos
            // library knows which phase of RFC 4752 section 3.1 it is in.
            (State::Sent, Some(server)) => {
                self.state = State::AwaitingToken;
                Ok(Step::NeedCredential(CredentialRequest::GssapiToken {
                    server_token: Some(Bytes::copy_from_slice(server)),
                }))
            }
            (State::Initial, Some(_)) => Err(SaslError::UnexpectedMessage(
                "GSSAPI: server message before the client's",
            )),
            (State::AwaitingToken, _) => Err(SaslError::UnexpectedMessage(
                "GSSAPI: waiting for the application's token",
            )),
            (State::Sent, None) => Err(SaslError::UnexpectedMessage(
                "GSSAPI: token sent, waiting for the server",
            )),
            (State::Done, _) => Err(SaslError::UnexpectedMessage("GSSAPI: exchange complete")),
        }
    }

    fn provide_credential(&mut self, credential: Credential) -> Result<Step, SaslError> {
        match (self.state, credential) {
            (State::AwaitingToken, Credential::Gssapi(GssapiStep::Send(token))) => {
                self.state = State::Sent;
                Ok(Step::Send(token))
            }
            (State::AwaitingToken, Credential::Gssapi(GssapiStep::SendLast(token))) => {
                self.state = State::Done;
                Ok(Step::SendLast(token))
            }
            (State::AwaitingToken, Credential::Gssapi(GssapiStep::Done)) => {
                self.state = State::Done;
                Ok(Step::Done)
            }
            _ => Err(SaslError::UnexpectedCredential),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::OAuthBearerToken;
    use super::*;

    fn token_request(server: Option<&[u8]>) -> Step {
        Step::NeedCredential(CredentialRequest::GssapiToken {
            server_token: server.map(Bytes::copy_from_slice),
        })
    }

    #[test]
    fn gssapi_relays_every_token() {
        let factory = Gssapi::new();
        assert_eq!(factory.name(), "GSSAPI");
        let mut m = factory.start().unwrap();
        assert_eq!(m.name(), "GSSAPI");
        // Phase 1: AP-REQ out, AP-REP in.
        assert_eq!(m.step(None), Ok(token_request(None)));
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Send(b"ap-req".to_vec()))),
            Ok(Step::Send(b"ap-req".to_vec()))
        );
        assert_eq!(m.step(Some(b"ap-rep")), Ok(token_request(Some(b"ap-rep"))));
        // An empty token is relayed as is.
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Send(Vec::new()))),
            Ok(Step::Send(Vec::new()))
        );
        // Phase 2: wrapped security-layer offer in, wrapped choice out.
        assert_eq!(
            m.step(Some(b"wrapped-offer")),
            Ok(token_request(Some(b"wrapped-offer")))
        );
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Send(
                b"wrapped-choice".to_vec()
            ))),
            Ok(Step::Send(b"wrapped-choice".to_vec()))
        );
        // Phase 3: the server's empty final message, then Done.
        assert_eq!(m.step(Some(b"")), Ok(token_request(Some(b""))));
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Done)),
            Ok(Step::Done)
        );
        assert_complete(m.as_mut());
    }

    /// Feeds the server's `server` token (none first) and answers `answer`.
    fn relay(
        m: &mut dyn Mechanism,
        server: Option<&[u8]>,
        answer: GssapiStep,
    ) -> Result<Step, SaslError> {
        assert_eq!(m.step(server), Ok(token_request(server)));
        m.provide_credential(Credential::Gssapi(answer))
    }

    /// Nothing more is taken: the exchange is complete.
    fn assert_complete(m: &mut dyn Mechanism) {
        assert!(matches!(
            m.step(Some(b"")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Done)),
            Err(SaslError::UnexpectedCredential)
        );
    }

    #[test]
    fn gssapi_last_token_ends_the_relay() {
        let mut m = Gssapi::new().start().unwrap();
        let ap_req = GssapiStep::Send(b"ap-req".to_vec());
        assert_eq!(
            relay(m.as_mut(), None, ap_req),
            Ok(Step::Send(b"ap-req".to_vec()))
        );
        let reply = GssapiStep::SendLast(b"reply".to_vec());
        assert_eq!(
            relay(m.as_mut(), Some(b"offer"), reply),
            Ok(Step::SendLast(b"reply".to_vec()))
        );
        assert_complete(m.as_mut());
        assert_eq!(
            format!("{:?}", GssapiStep::SendLast(b"TICKET".to_vec())),
            "SendLast(<6 bytes redacted>)"
        );
    }

    #[test]
    fn gssapi_out_of_order() {
        let mut m = Gssapi::new().start().unwrap();
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Send(vec![1]))),
            Err(SaslError::UnexpectedCredential)
        );
        assert!(matches!(
            m.step(Some(b"x")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert_eq!(m.step(None), Ok(token_request(None)));
        // A server message while the application has not answered.
        assert!(matches!(
            m.step(Some(b"x")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        // The wrong kind of credential.
        assert_eq!(
            m.provide_credential(Credential::OAuthBearer(OAuthBearerToken::new("t"))),
            Err(SaslError::UnexpectedCredential)
        );
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Send(vec![1]))),
            Ok(Step::Send(vec![1]))
        );
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        assert_eq!(
            m.provide_credential(Credential::Gssapi(GssapiStep::Send(vec![2]))),
            Err(SaslError::UnexpectedCredential)
        );
    }

    #[test]
    fn gssapi_debug_redacts_tokens() {
        let step = GssapiStep::Send(b"TICKET-SECRET".to_vec());
        assert_eq!(format!("{step:?}"), "Send(<13 bytes redacted>)");
        let credential = Credential::Gssapi(step.clone());
        assert!(!format!("{credential:?}").contains("TICKET"));
        let mut m = Gssapi::new().start().unwrap();
        let _ = m.step(None);
        let _ = m.provide_credential(credential);
        assert!(!format!("{m:?}").contains("TICKET"));
        assert_eq!(format!("{:?}", GssapiStep::Done), "Done");
    }
}
