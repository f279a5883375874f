//! `HttpsKeyFetcher` against the test kit's HTTPS server: the set is read
//! when the endpoint is trusted (CA, and pin if one is set), and each way an
//! endpoint can be wrong (untrusted certificate, mismatched pin, error
//! status, redirect, oversized or malformed body, too slow) is refused with
//! its own error. With `BackgroundKeySource`, a key added at the endpoint
//! is picked up after an unknown `kid`, and a verifier is never held up by
//! a slow endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mqtt_sec_auth::jwt::{
    BackgroundKeySource, HttpsFetchError, HttpsKeyFetcher, KeyFetcher, KeySource,
};
use mqtt_sec_auth::{JwtKeyError, KeySourceError};
use mqtt_sec_testkit::https::HttpsServer;
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::{ClientTls, Pin, PinSet, TrustRoots};

const KEY_A: &str = r#"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const KEY_B: &str = r#"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"b","x":"PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw"}"#;

fn set(keys: &[&str]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

struct Endpoint {
    pki: TestPki,
    cert: mqtt_sec_testkit::IssuedCert,
    server: HttpsServer,
}

fn endpoint() -> Endpoint {
    let mut pki = TestPki::new().unwrap();
    let cert = pki.issue(&CertSpec::localhost_server("jwks")).unwrap();
    let server = HttpsServer::start(&cert).unwrap();
    server.set_body(set(&[KEY_A]));
    Endpoint { pki, cert, server }
}

fn tls(roots: TrustRoots, pins: Option<PinSet>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = ClientTls::builder(provider).trust(roots);
    if let Some(pins) = pins {
        builder = builder.pins(pins);
    }
    builder.no_identity().build().unwrap().config()
}

impl Endpoint {
    fn trusted(&self) -> Arc<rustls::ClientConfig> {
        tls(
            TrustRoots::new()
                .pem_file(self.pki.root().cert_path())
                .unwrap(),
            None,
        )
    }

    fn fetcher(&self) -> HttpsKeyFetcher {
        HttpsKeyFetcher::new(&self.server.url("/jwks.json"), self.trusted()).unwrap()
    }
}

/// The `HttpsFetchError` under a fetch failure.
fn https_cause(error: &KeySourceError) -> &HttpsFetchError {
    let KeySourceError::Fetch(cause) = error else {
        panic!("not a fetch error: {error:?}");
    };
    cause
        .downcast_ref::<HttpsFetchError>()
        .unwrap_or_else(|| panic!("no HttpsFetchError under {error:?}"))
}

#[test]
fn a_trusted_endpoint_is_read() {
    let endpoint = endpoint();
    let keys = endpoint.fetcher().fetch().unwrap();
    assert!(keys.get("a").is_some());
    assert_eq!(keys.len(), 1);
    assert_eq!(endpoint.server.requests(), 1);
}

#[test]
fn a_matching_pin_is_read_and_a_mismatched_one_refused() {
    let endpoint = endpoint();
    let url = endpoint.server.url("/jwks.json");
    let roots = || {
        TrustRoots::new()
            .pem_file(endpoint.pki.root().cert_path())
            .unwrap()
    };
    // The pin of the server's own key.
    let own = Pin::from_certificate(endpoint.cert.cert_der()).unwrap();
    let pinned = tls(
        roots(),
        Some(
            PinSet::builder([own])
                .backup([Pin::from_spki_der(b"next key")])
                .build()
                .unwrap(),
        ),
    );
    HttpsKeyFetcher::new(&url, pinned).unwrap().fetch().unwrap();
    let other = Pin::from_spki_der(b"some other key");
    let mismatched = tls(
        roots(),
        Some(
            PinSet::builder([other])
                .backup([Pin::from_spki_der(b"next key")])
                .build()
                .unwrap(),
        ),
    );
    let error = HttpsKeyFetcher::new(&url, mismatched)
        .unwrap()
        .fetch()
        .unwrap_err();
    assert!(
        matches!(https_cause(&error), HttpsFetchError::Transport(text) if text.contains("PinMismatch")),
        "{}",
        mqtt_sec_core::Chain(&error)
    );
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let mut endpoint = endpoint();
    let unknown = endpoint.pki.unknown_ca().unwrap().cert_path().to_owned();
    let fetcher = HttpsKeyFetcher::new(
        &endpoint.server.url("/jwks.json"),
        tls(TrustRoots::new().pem_file(unknown).unwrap(), None),
    )
    .unwrap();
    let error = fetcher.fetch().unwrap_err();
    assert!(
        matches!(https_cause(&error), HttpsFetchError::Transport(text) if text.contains("UnknownIssuer") || text.contains("unknown issuer")),
        "{}",
        mqtt_sec_core::Chain(&error)
    );
    assert_eq!(
        endpoint.server.requests(),
        0,
        "no request sent over an untrusted connection"
    );
}

#[test]
fn error_statuses_and_redirects_are_refused() {
    let endpoint = endpoint();
    for status in [503, 404, 302, 204] {
        endpoint.server.set_status(status);
        let error = endpoint.fetcher().fetch().unwrap_err();
        assert!(
            matches!(https_cause(&error), HttpsFetchError::Status(s) if *s == status),
            "{status}: {error:?}"
        );
    }
}

#[test]
fn an_oversized_or_malformed_set_is_refused() {
    let endpoint = endpoint();
    endpoint.server.set_body(" ".repeat(1024 * 1024 + 1));
    let error = endpoint.fetcher().fetch().unwrap_err();
    assert!(
        matches!(error, KeySourceError::Key(JwtKeyError::TooLarge { .. })),
        "{error:?}"
    );
    // Exactly the limit is read (and parsed).
    let padded = set(&[KEY_A]);
    let padded = format!("{padded}{}", " ".repeat(1024 * 1024 - padded.len()));
    endpoint.server.set_body(padded);
    assert_eq!(endpoint.fetcher().fetch().unwrap().len(), 1);
    endpoint.server.set_body("not json");
    let error = endpoint.fetcher().fetch().unwrap_err();
    assert!(matches!(error, KeySourceError::Key(_)), "{error:?}");
}

#[test]
fn a_slow_endpoint_times_out() {
    let endpoint = endpoint();
    endpoint.server.set_delay(Duration::from_secs(5));
    let fetcher = HttpsKeyFetcher::with_timeout(
        &endpoint.server.url("/jwks.json"),
        endpoint.trusted(),
        Duration::from_millis(300),
    )
    .unwrap();
    let started = Instant::now();
    let error = fetcher.fetch().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(https_cause(&error), HttpsFetchError::Transport(_)),
        "{error:?}"
    );
}

fn until(mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < end, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_key_added_at_the_endpoint_is_picked_up_after_an_unknown_kid() {
    let endpoint = endpoint();
    let source = BackgroundKeySource::builder(endpoint.fetcher())
        .refresh_every(Duration::from_secs(3600))
        .min_refetch(Duration::from_millis(100))
        .spawn()
        .unwrap();
    until(|| source.status().attempts == 1);
    endpoint.server.set_body(set(&[KEY_A, KEY_B]));
    let now = SystemTime::now();
    assert!(source.keys(now).unwrap().get("b").is_none());
    // The token's verifier asks again; the answer comes without waiting.
    assert!(source.keys_for_unknown_kid(now).unwrap().get("b").is_none());
    until(|| source.status().attempts == 2);
    assert!(source.keys(SystemTime::now()).unwrap().get("b").is_some());
}

#[test]
fn a_slow_endpoint_never_holds_up_a_verifier() {
    let endpoint = endpoint();
    let source = BackgroundKeySource::builder(endpoint.fetcher())
        .refresh_every(Duration::from_secs(3600))
        .min_refetch(Duration::from_millis(10))
        .spawn()
        .unwrap();
    until(|| source.status().attempts == 1);
    endpoint.server.set_delay(Duration::from_secs(3));
    until(|| {
        source.keys_for_unknown_kid(SystemTime::now()).unwrap();
        endpoint.server.requests() == 2
    });
    // A fetch is in progress, held for seconds by the endpoint.
    let started = Instant::now();
    for _ in 0..100 {
        assert!(source.keys_for_unknown_kid(SystemTime::now()).is_ok());
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}
