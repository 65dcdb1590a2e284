//! [`Secret`]: a string that never prints and is wiped when dropped.

use std::fmt;

/// A password, token or other credential.
///
/// `Debug` and `Display` print `<redacted>`, so a `Secret` can sit inside
/// structs that derive `Debug` and inside error values without leaking. The
/// bytes are overwritten with zeros when the value is dropped.
///
/// The wiping is best effort, done without `unsafe`: it covers the buffer the
/// `Secret` owns, not copies the caller made before handing the string over
/// (or that a growing `String` left behind in freed memory). Build the string
/// once and move it in.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The credential itself. Only mechanisms building a wire message
    /// should need this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the credential is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Take the buffer out (leaving an empty, non-allocated String behind),
        // turn it into its Vec<u8> (no copy) and overwrite every byte.
        drop(wipe(std::mem::take(&mut self.0)));
    }
}

/// Overwrites the string's own buffer with zeros and hands the buffer back
/// (same allocation, no copy) to be freed by the caller.
fn wipe(secret: String) -> Vec<u8> {
    let mut bytes = secret.into_bytes();
    bytes.fill(0);
    // Keep the optimiser from treating the writes as dead stores to memory
    // that is about to be freed.
    std::hint::black_box(&mut bytes);
    bytes
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

impl PartialEq for Secret {
    /// Compares without an early exit on the first differing byte, so the
    /// time taken does not tell how much of a guess was right (the length
    /// is not hidden).
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(
            format!("{:#?}", Some(s.clone())),
            "Some(\n    <redacted>,\n)"
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn conversions_and_equality() {
        let a = Secret::from("pw");
        let b = Secret::from(String::from("pw"));
        let c = Secret::new("pX");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, Secret::new("pw2"));
        assert_eq!(a.clone(), a);
        assert!(Secret::default().is_empty());
        assert!(!a.is_empty());
    }

    /// Every built-in factory, mechanism (at every stage) and credential:
    /// `Debug` never shows the password, token or key material.
    #[test]
    fn no_debug_output_leaks_a_secret() {
        use super::super::{
            Credential, CredentialRequest, Gssapi, GssapiStep, Mechanism, MechanismFactory,
            OAuthBearer, OAuthBearerToken, Plain, Scram, ScramHash, Step,
        };

        const PASSWORD: &str = "PASSWORD-d0-not-leak";
        const TOKEN: &str = "TOKEN-d0-not-leak";
        const TICKET: &[u8] = b"TICKET-d0-not-leak";

        let factories: Vec<Box<dyn MechanismFactory>> = vec![
            Box::new(Plain::new("user", PASSWORD).with_authzid("user")),
            Box::new(Scram::new(ScramHash::Sha256, "user", PASSWORD)),
            Box::new(Scram::new(ScramHash::Sha512, "user", PASSWORD).with_token_auth(true)),
            Box::new(OAuthBearer::new()),
            Box::new(Gssapi::new()),
        ];
        let token = OAuthBearerToken::new(TOKEN).with_extension("traceId", "x");
        let ticket = GssapiStep::Send(TICKET.to_vec());
        let mut dumps = vec![
            format!("{token:?}"),
            format!("{ticket:?}"),
            format!("{:?}", Credential::OAuthBearer(token.clone())),
            format!("{:?}", Credential::Gssapi(ticket.clone())),
            format!(
                "{:?}",
                Credential::Custom(bytes::Bytes::from_static(TICKET))
            ),
            format!(
                "{:?}",
                Credential::CustomExpiring {
                    data: bytes::Bytes::from_static(TICKET),
                    expires_at: std::time::Instant::now(),
                }
            ),
            format!("{:?}", Secret::new(PASSWORD)),
        ];
        for factory in &factories {
            dumps.push(format!("{factory:?}"));
            dumps.push(format!("{factory:#?}"));
            let mut m: Box<dyn Mechanism> = factory.start().unwrap();
            dumps.push(format!("{m:?}"));
            let first = m.step(None);
            dumps.push(format!("{m:?}"));
            let credential = match factory.name() {
                "OAUTHBEARER" => Some(Credential::OAuthBearer(token.clone())),
                "GSSAPI" => Some(Credential::Gssapi(ticket.clone())),
                _ => None,
            };
            if let Some(credential) = credential {
                let _ = m.provide_credential(credential);
                dumps.push(format!("{m:?}"));
            }
            if let Ok(Step::Send(client_first)) = first {
                if factory.name().starts_with("SCRAM") {
                    // Past PBKDF2: the mechanism now holds key material.
                    let client_first = String::from_utf8(client_first).unwrap();
                    let nonce = client_first.split(',').nth(3).unwrap();
                    let server_first = format!("{nonce}SRV,s=c2FsdA==,i=4096");
                    // The PBKDF2 job carries the password, and its result
                    // the salted password.
                    let Ok(Step::NeedCredential(request)) = m.step(Some(server_first.as_bytes()))
                    else {
                        panic!("SCRAM asks for PBKDF2")
                    };
                    dumps.push(format!("{request:?}"));
                    dumps.push(format!("{m:?}"));
                    let CredentialRequest::ScramSaltedPassword(job) = request else {
                        panic!("{request:?}")
                    };
                    let salted = job.run();
                    dumps.push(format!("{salted:?}"));
                    assert!(matches!(m.provide_credential(salted), Ok(Step::Send(_))));
                    dumps.push(format!("{m:?}"));
                }
            }
        }
        let ticket_text = String::from_utf8_lossy(TICKET).into_owned();
        for dump in &dumps {
            for secret in [PASSWORD, TOKEN, ticket_text.as_str()] {
                assert!(!dump.contains(secret), "{dump} leaks {secret}");
            }
        }
    }

    #[test]
    fn wipe_zeroes_the_original_buffer() {
        // What Drop runs: the very allocation that held the secret (same
        // pointer, so no copy was made first) ends up all zeros.
        let s = String::from("secret");
        let ptr = s.as_ptr();
        let bytes = wipe(s);
        assert_eq!(bytes.as_ptr(), ptr);
        assert_eq!(bytes, vec![0u8; 6]);
    }
}
