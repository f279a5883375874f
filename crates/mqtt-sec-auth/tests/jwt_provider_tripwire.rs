//! jsonwebtoken's provider is process-wide, and with none or both of its
//! backend features and nothing installed, it is a provider whose every
//! function panics. This process installs exactly such a provider first:
//! everything this crate does must still work, because it never asks
//! jsonwebtoken for its provider. (One test per process: the provider is global.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use jsonwebtoken::crypto::{CryptoProvider, KeyUtils};
use mqtt_sec_auth::jwt::{
    ClaimsTemplate, KeySet, TokenMinter, TrustedKey, Validation, install_ring_provider,
};
use mqtt_sec_auth::secrecy::ExposeSecret;
use support::*;

static TRIPWIRE: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| panic!("the global jsonwebtoken provider was used (signer)"),
    verifier_factory: |_, _| panic!("the global jsonwebtoken provider was used (verifier)"),
    key_utils: KeyUtils::new_unimplemented(),
};

#[test]
fn this_crate_never_uses_the_process_wide_provider() {
    TRIPWIRE.install_default().unwrap();
    // The wire is live: jsonwebtoken's own decode panics now.
    let key = TestKey::hs256();
    let token = key.sign_claims(&good_claims());
    let theirs = std::panic::catch_unwind(|| {
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(HS_SECRET),
            &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
        )
    });
    assert!(
        theirs.is_err(),
        "jsonwebtoken::decode should have hit the tripwire"
    );

    // Ours: keys, JWK Sets, thumbprints, minting and verification, all algorithms.
    for key in TestKey::all() {
        let keys = key.key_set();
        let minter = TokenMinter::new(key.signing, ClaimsTemplate::new("dev-1"));
        let minted = minter.mint(now()).unwrap();
        assert!(verify_with(keys, Validation::new(), minted.token().expose_secret()).is_ok());
    }
    let pem = rcgen::KeyPair::generate().unwrap().public_key_pem();
    let key = TrustedKey::from_public_key_pem(&pem).unwrap();
    assert!(KeySet::new([key]).is_ok());
    // Offering ring does not replace an installed provider, and does not panic.
    assert!(!install_ring_provider());
}
