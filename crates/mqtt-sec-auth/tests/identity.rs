//! Certificate identities against openssl's own view of the same certificate:
//! RFC 2253 subject (what mosquitto's use_subject_as_username uses), SHA-256
//! fingerprint; names, SANs, validity and user name mapping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::IdentityError;
use mqtt_sec_auth::identity::{CertificateIdentity, SubjectAltName, UsernameFrom};
use mqtt_sec_testkit::in_ci;
use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SanType};

fn cert(dn: &[(DnType, DnValue)], sans: Vec<SanType>) -> (String, Vec<u8>) {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    for (ty, value) in dn {
        name.push(ty.clone(), value.clone());
    }
    params.distinguished_name = name;
    params.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), cert.der().to_vec())
}

/// `openssl x509 <args>` on a PEM certificate, or `None` (skip) without openssl outside CI.
fn openssl(pem: &str, args: &[&str]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, pem).unwrap();
    let out = match Command::new("openssl")
        .arg("x509")
        .arg("-in")
        .arg(&path)
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(_) if !in_ci() => {
            eprintln!("SKIPPED: openssl not installed");
            return None;
        }
        Err(e) => panic!("openssl is required under CI: {e}"),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap().trim_end().to_owned())
}

fn utf8(s: &str) -> DnValue {
    DnValue::Utf8String(s.into())
}

#[test]
fn subject_dn_matches_openssl_rfc2253() {
    let subjects: Vec<Vec<(DnType, DnValue)>> = vec![
        vec![(DnType::CommonName, utf8("sensor-17"))],
        vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("CH".try_into().unwrap()),
            ),
            (DnType::OrganizationName, utf8("Acme, Inc.")),
            (
                DnType::OrganizationalUnitName,
                utf8("Plant +1 <east>; \"north\""),
            ),
            (DnType::CommonName, utf8("device\\17")),
        ],
        vec![
            (DnType::CommonName, utf8("#hash first")),
            (DnType::LocalityName, utf8(" spaced ")),
        ],
        vec![
            (DnType::CommonName, utf8("Zürich ☃")),
            (DnType::StateOrProvinceName, utf8("tab\there")),
        ],
        vec![
            (
                DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
                DnValue::Ia5String("example".try_into().unwrap()),
            ),
            (
                DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                DnValue::Ia5String("ops@example.com".try_into().unwrap()),
            ),
            (
                DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]),
                utf8("unknown type"),
            ),
            (
                DnType::CommonName,
                DnValue::BmpString("bmp name".try_into().unwrap()),
            ),
        ],
    ];
    for dn in subjects {
        let (pem, der) = cert(&dn, vec![]);
        let id = CertificateIdentity::from_der(&der).unwrap();
        let Some(expected) = openssl(&pem, &["-noout", "-subject", "-nameopt", "RFC2253"]) else {
            return;
        };
        let expected = expected.strip_prefix("subject=").unwrap();
        assert_eq!(id.subject_dn(), expected, "{dn:?}");
        assert_eq!(
            id.mqtt_username(UsernameFrom::SubjectDn).as_deref(),
            Some(expected)
        );
    }
}

#[test]
fn fingerprint_matches_openssl() {
    let (pem, der) = cert(&[(DnType::CommonName, utf8("fp"))], vec![]);
    let id = CertificateIdentity::from_der(&der).unwrap();
    let Some(out) = openssl(&pem, &["-noout", "-fingerprint", "-sha256"]) else {
        return;
    };
    let expected = out.split_once('=').unwrap().1;
    assert_eq!(id.fingerprint_hex(), expected);
    assert_eq!(CertificateIdentity::from_pem(&pem).unwrap(), id);
}

#[test]
fn names_sans_validity_and_user_names() {
    let sans = vec![
        SanType::DnsName("sensor-17.plant.example".try_into().unwrap()),
        SanType::IpAddress("10.0.0.17".parse().unwrap()),
        SanType::IpAddress("::1".parse().unwrap()),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
        SanType::URI("https://example.com/device/17".try_into().unwrap()),
        SanType::URI("spiffe://plant.example/sensor/17".try_into().unwrap()),
    ];
    let dn = [
        (DnType::OrganizationName, utf8("Acme")),
        (DnType::CommonName, utf8("first")),
    ];
    let (_, der) = cert(&dn, sans);
    let id = CertificateIdentity::from_der(&der).unwrap();
    assert_eq!(id.common_name(), Some("first"));
    assert_eq!(
        id.mqtt_username(UsernameFrom::CommonName).as_deref(),
        Some("first")
    );
    assert_eq!(
        id.sans(),
        [
            SubjectAltName::Dns("sensor-17.plant.example".into()),
            SubjectAltName::Ip("10.0.0.17".parse::<IpAddr>().unwrap()),
            SubjectAltName::Ip("::1".parse::<IpAddr>().unwrap()),
            SubjectAltName::Email("ops@example.com".into()),
            SubjectAltName::Uri("https://example.com/device/17".into()),
            SubjectAltName::Uri("spiffe://plant.example/sensor/17".into()),
        ]
    );
    assert_eq!(id.spiffe_id(), Some("spiffe://plant.example/sensor/17"));
    // Each SAN rule takes the first SAN of its type, in certificate order.
    let fingerprint = id.fingerprint_hex();
    let names = [
        (UsernameFrom::DnsSan, Some("sensor-17.plant.example")),
        (UsernameFrom::UriSan, Some("https://example.com/device/17")),
        (UsernameFrom::EmailSan, Some("ops@example.com")),
        (
            UsernameFrom::SpiffeId,
            Some("spiffe://plant.example/sensor/17"),
        ),
        (UsernameFrom::FingerprintSha256, Some(fingerprint.as_str())),
    ];
    for (from, expected) in names {
        assert_eq!(id.mqtt_username(from).as_deref(), expected, "{from:?}");
    }

    let now = SystemTime::now();
    assert!(id.is_valid_at(now));
    assert!(!id.expires_within(Duration::from_secs(86_400), now));
    assert!(id.expires_within(Duration::from_secs(86_400 * 365 * 5000), now));
    assert!(!id.is_valid_at(id.not_after() + Duration::from_secs(1)));
    assert!(!id.is_valid_at(id.not_before() - Duration::from_secs(1)));
    assert!(id.expires_within(Duration::ZERO, id.not_after()));
}

#[test]
fn certificates_without_a_usable_common_name() {
    let (_, der) = cert(&[(DnType::OrganizationName, utf8("no cn"))], vec![]);
    let id = CertificateIdentity::from_der(&der).unwrap();
    assert_eq!(id.common_name(), None);
    assert_eq!(id.mqtt_username(UsernameFrom::CommonName), None);
    assert_eq!(
        id.mqtt_username(UsernameFrom::SubjectDn).as_deref(),
        Some("O=no cn")
    );
    // Without SANs, the SAN rules give no name (never another name instead).
    for from in [
        UsernameFrom::DnsSan,
        UsernameFrom::UriSan,
        UsernameFrom::EmailSan,
        UsernameFrom::SpiffeId,
    ] {
        assert_eq!(id.mqtt_username(from), None, "{from:?}");
    }
    // A URI that is not a SPIFFE ID is a URI SAN but no SPIFFE ID.
    let (_, der) = cert(
        &[(DnType::CommonName, utf8("u"))],
        vec![SanType::URI("urn:example:device:9".try_into().unwrap())],
    );
    let id = CertificateIdentity::from_der(&der).unwrap();
    assert_eq!(
        id.mqtt_username(UsernameFrom::UriSan).as_deref(),
        Some("urn:example:device:9")
    );
    assert_eq!(id.mqtt_username(UsernameFrom::SpiffeId), None);
    // A NUL inside the CN would cut the name in C code: refused.
    let (_, der) = cert(&[(DnType::CommonName, utf8("admin\0.evil"))], vec![]);
    assert_eq!(
        CertificateIdentity::from_der(&der).unwrap().common_name(),
        None
    );
}

#[test]
fn malformed_input_is_refused() {
    let (pem, der) = cert(&[(DnType::CommonName, utf8("x"))], vec![]);
    assert!(matches!(
        CertificateIdentity::from_der(&der[..der.len() - 1]),
        Err(IdentityError::Certificate(_))
    ));
    let mut trailing = der.clone();
    trailing.push(0);
    assert_eq!(
        CertificateIdentity::from_der(&trailing).unwrap_err(),
        IdentityError::TrailingBytes
    );
    assert!(matches!(
        CertificateIdentity::from_der(b"garbage"),
        Err(IdentityError::Certificate(_))
    ));
    assert_eq!(
        CertificateIdentity::from_pem("no pem here"),
        Err(IdentityError::Pem)
    );
    let key_only = pem.replace("CERTIFICATE", "PRIVATE KEY");
    assert_eq!(
        CertificateIdentity::from_pem(&key_only),
        Err(IdentityError::Pem)
    );
    assert!(matches!(
        CertificateIdentity::from_der(&vec![0x30; 70_000]),
        Err(IdentityError::TooLarge { .. })
    ));
    assert!(matches!(
        CertificateIdentity::from_pem(&"A".repeat(140_000)),
        Err(IdentityError::TooLarge { .. })
    ));
}

/// `openssl x509 -subject -nameopt RFC2253` of a certificate openssl makes
/// with `-subj SUBJECT -multivalue-rdn`: the PEM and openssl's subject, or
/// `None` (skip) without openssl outside CI.
fn openssl_certificate(subject: &str) -> Option<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let made = mqtt_sec_testkit::openssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-multivalue-rdn",
        "-subj",
        subject,
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let made = mqtt_sec_testkit::or_skip(made)?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pem = std::fs::read_to_string(&cert).unwrap();
    let expected = openssl(&pem, &["-noout", "-subject", "-nameopt", "RFC2253"])?;
    Some((pem, expected.strip_prefix("subject=").unwrap().to_owned()))
}

/// The review: multi-valued RDNs must be written in OpenSSL's order, which
/// reverses the values inside an RDN as it reverses the RDNs:
/// `/O=Acme/CN=dev+UID=u17` prints as `UID=u17+CN=dev,O=Acme`. What
/// mosquitto's `use_subject_as_username` makes the user name.
#[test]
fn multi_valued_rdns_are_written_in_openssls_order() {
    for subject in [
        "/O=Acme/CN=dev+UID=u17",
        "/C=CH/O=Acme+OU=Plant 1+L=Bern/CN=sensor-17",
        "/CN=a+CN=b+serialNumber=42",
        "/DC=example/DC=org/OU=x\\, y+CN=multi",
    ] {
        let Some((pem, expected)) = openssl_certificate(subject) else {
            return;
        };
        let id = CertificateIdentity::from_pem(&pem).unwrap();
        assert_eq!(id.subject_dn(), expected, "{subject}");
    }
}

/// The review: BMPString and T61String common names must be handled as
/// mosquitto's `use_identity_as_username` handles them: it takes the raw
/// bytes, and refuses a name with a NUL in it, which every BMPString has.
/// Checked against a real mosquitto: the BMP certificate is refused, the
/// T61 one gets its name as the user name.
#[tokio::test]
async fn bmp_and_t61_common_names_are_read_as_mosquitto_reads_them() {
    use mqtt_sec_testkit::client::TestClient;
    use mqtt_sec_testkit::{CertSpec, Mosquitto, NameEncoding, TestPki, TlsListener, or_skip};
    use mqtt_sec_tls::rustls::crypto::ring;
    use mqtt_sec_tls::{ClientTls, Identity, TrustRoots};

    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let bmp = pki
        .issue(&CertSpec::client("device-bmp").common_name_encoding(NameEncoding::Bmp))
        .unwrap();
    let t61 = pki
        .issue(&CertSpec::client("device-t61").common_name_encoding(NameEncoding::Teletex))
        .unwrap();
    let ours = |cert: &mqtt_sec_testkit::IssuedCert| {
        CertificateIdentity::from_der(cert.cert_der())
            .unwrap()
            .mqtt_username(UsernameFrom::CommonName)
    };
    assert_eq!(ours(&bmp), None);
    assert_eq!(ours(&t61).as_deref(), Some("device-t61"));

    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(
                TlsListener::new(&server)
                    .require_client_cert(pki.root().cert_path())
                    .use_identity_as_username(true),
            )
            .start(),
    ) else {
        return;
    };
    let connect = |cert: &mqtt_sec_testkit::IssuedCert| {
        let tls = ClientTls::builder(std::sync::Arc::new(ring::default_provider()))
            .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
            .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
            .build()
            .unwrap();
        let mut options =
            rumqttc::MqttOptions::new(cert.name(), broker.host(), broker.mtls_port().unwrap());
        options.set_transport(tls.transport());
        TestClient::connect(options)
    };
    assert!(
        connect(&bmp).await.is_err(),
        "mosquitto refuses the BMP common name"
    );
    connect(&t61).await.unwrap();
    broker
        .wait_for_log("u'device-t61'", std::time::Duration::from_secs(5))
        .unwrap();
}

/// The review: `UNIX_EPOCH - Duration` for a very old notBefore panics on
/// platforms whose clock cannot go before 1970; the dates are now computed
/// with checked arithmetic (the epoch stands in there). On this platform
/// they are exact.
#[test]
fn very_old_and_far_validity_dates_do_not_panic() {
    let day = Duration::from_secs(86_400);
    for (year, days_from_epoch) in [(1950i32, -7305i64), (1, -719_162), (9999, 2_932_532)] {
        let mut params = CertificateParams::default();
        params.not_before = rcgen::date_time_ymd(year, 1, 1);
        params.not_after = rcgen::date_time_ymd(9999, 12, 31);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let id = CertificateIdentity::from_der(&der).unwrap();
        let expected = if days_from_epoch < 0 {
            std::time::UNIX_EPOCH.checked_sub(day * days_from_epoch.unsigned_abs() as u32)
        } else {
            std::time::UNIX_EPOCH.checked_add(day * days_from_epoch as u32)
        }
        .unwrap_or(std::time::UNIX_EPOCH);
        assert_eq!(id.not_before(), expected, "{year}");
        assert_eq!(id.is_valid_at(SystemTime::now()), year < 2026, "{year}");
    }
}

#[test]
fn the_serial_is_openssls() {
    for serial in [vec![0x01], vec![0x00, 0x8f, 0x01], vec![0x7f; 20]] {
        let mut params = CertificateParams::default();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = CertificateIdentity::from_der(cert.der()).unwrap();
        let Some(printed) = openssl(&cert.pem(), &["-noout", "-serial"]) else {
            return;
        };
        // openssl prints it without the sign byte DER adds before 0x8f.
        let start = id.serial().iter().position(|b| *b != 0).unwrap();
        let hex: String = id.serial()[start..]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(printed, format!("serial={hex}"));
        assert_eq!(id.serial()[0] == 0, serial[0] == 0 || serial[0] & 0x80 != 0);
    }
}
