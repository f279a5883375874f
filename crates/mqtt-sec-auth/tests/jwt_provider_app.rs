//! An application that installed its own jsonwebtoken provider (here the
//! RustCrypto one, enabled as a dev-dependency feature) keeps it: offering
//! ring changes nothing, this crate works unchanged, and tokens flow both
//! ways between the two backends. (One test per process: the provider is global.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_auth::jwt::install_ring_provider;

#[test]
fn an_application_provider_stays_and_interoperates() {
    jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
        .install_default()
        .unwrap();
    assert!(!install_ring_provider());
    support::jsonwebtoken_api_interoperates();
}
