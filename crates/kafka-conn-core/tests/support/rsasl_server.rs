//! An independent SCRAM server for tests: the server side of the `rsasl`
//! crate (2.x, features `scram-sha-2`, `config_builder`, `provider`; a
//! test dependency only), with one user whose stored keys rsasl derives
//! itself (`hash_password`, `derive_keys`), so no code of ours is on the
//! server side. Written once, included by path where it is needed: the
//! core's SCRAM unit tests (`src/sasl/scram.rs`) and the testsuite's
//! SCRAM-off-the-executor test (`kafka-conn-testsuite/src/scram.rs`).

#![allow(dead_code, unreachable_pub)]

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use rsasl::prelude::SessionError;
use rsasl::property::AuthId;
use rsasl::validate::{Validate, Validation, ValidationError};
use sha2::digest::core_api::BlockSizeUser;
use sha2::digest::generic_array::GenericArray;
use sha2::digest::{Digest, FixedOutputReset};

/// What the server's validation reports: the authenticated user.
pub struct Authenticated;

impl Validation for Authenticated {
    type Value = String;
}

/// The server's credential store: one user.
pub struct Store {
    /// The user's name.
    pub user: &'static str,
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// H(ClientKey), for checking the client's proof.
    pub stored_key: Vec<u8>,
    /// ServerKey, for signing the server-final message.
    pub server_key: Vec<u8>,
}

impl SessionCallback for Store {
    fn callback(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if context.get_ref::<AuthId>() == Some(self.user) {
            request.satisfy::<ScramStoredPassword<'static>>(&ScramStoredPassword::new(
                self.iterations,
                &self.salt,
                &self.stored_key,
                &self.server_key,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context<'_>,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let user = context.get_ref::<AuthId>().unwrap_or_default().to_owned();
        validate.with::<Authenticated, _>(|| Ok(user))?;
        Ok(())
    }
}

/// rsasl's (StoredKey, ServerKey) for `password` with the hash `D`.
pub fn keys<D>(password: &str, salt: &[u8], iterations: u32) -> (Vec<u8>, Vec<u8>)
where
    D: Digest + BlockSizeUser + FixedOutputReset + Clone + Sync,
{
    let mut salted = GenericArray::default();
    hash_password::<D>(password.as_bytes(), iterations, salt, &mut salted);
    let (client_key, server_key) = derive_keys::<D>(salted.as_slice());
    (D::digest(client_key).to_vec(), server_key.to_vec())
}
