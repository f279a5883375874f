//! An application that uses jsonwebtoken's own API too can install our ring
//! provider; jsonwebtoken's `encode`/`decode` then run on ring and
//! interoperate with this crate. (One test per process: the provider is global.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_auth::jwt::install_ring_provider;

#[test]
fn installed_ring_provider_serves_jsonwebtoken() {
    assert!(install_ring_provider(), "first installation");
    assert!(
        !install_ring_provider(),
        "second one is refused, without a panic"
    );
    support::jsonwebtoken_api_interoperates();
}
