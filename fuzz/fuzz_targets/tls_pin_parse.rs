//! Pin text, PEM and DER certificate parsing never panic, and a parsed pin
//! prints back to a text that parses to the same pin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_tls::Pin;
use mqtt_sec_tls::rustls_pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(pin) = text.parse::<Pin>() {
            assert_eq!(pin.to_string().parse::<Pin>(), Ok(pin));
            assert_eq!(pin.to_hex().parse::<Pin>(), Ok(pin));
        }
    }
    let _ = Pin::from_pem_certificates(data);
    let _ = Pin::from_certificate(&CertificateDer::from(data));
});
