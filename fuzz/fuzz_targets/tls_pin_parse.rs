//! Pin text and every PEM/DER parser of mqtt-sec-tls (certificates, keys,
//! CRLs, summaries) never panic, and a parsed pin prints back to a text
//! that parses to the same pin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_tls::rustls_pki_types::CertificateDer;
use mqtt_sec_tls::{CertificateSummary, Identity, Pin, Revocation, TrustRoots};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(pin) = text.parse::<Pin>()
    {
        assert_eq!(pin.to_string().parse::<Pin>(), Ok(pin));
        assert_eq!(pin.to_hex().parse::<Pin>(), Ok(pin));
    }
    let _ = Pin::from_pem_certificates(data);
    let der = CertificateDer::from(data);
    if let (Ok(pin), Ok(summary)) = (
        Pin::from_certificate(&der),
        CertificateSummary::from_der(&der),
    ) {
        assert_eq!(pin, summary.pin);
    }
    let _ = TrustRoots::new().pem_bytes(data);
    let _ = Revocation::new().pem_bytes(data);
    let (chain, key) = data.split_at(data.len() / 2);
    let _ = Identity::from_pem(chain, key);
});
