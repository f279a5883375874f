//! The PKI checked by an independent verifier: `openssl verify`, `openssl
//! x509` and `openssl pkey` must agree with what each certificate claims to be.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use mqtt_sec_testkit::{CertSpec, Error, IssuedBy, KeyAlg, TestPki, Validity, or_skip};

/// Runs openssl; `None` (skip) when it is missing outside CI.
fn openssl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Option<(bool, String)> {
    let output = match Command::new("openssl")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let missing = Error::ToolMissing {
                tool: "openssl",
                hint: "apt-get install -y openssl",
            };
            or_skip::<()>(Err(missing)); // panics under CI, prints the skip elsewhere
            return None;
        }
        Err(e) => panic!("running openssl: {e}"),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some((output.status.success(), text))
}

/// `openssl verify` of a leaf against the root, the intermediate offered as
/// untrusted, optionally with the CRLs.
fn verify(pki: &TestPki, leaf: &Path, with_crl: bool) -> Option<(bool, String)> {
    let (root, intermediate, crl) = (
        pki.root().cert_path(),
        pki.intermediate().cert_path(),
        pki.crl_path(),
    );
    if with_crl {
        openssl(&[
            &"verify",
            &"-crl_check_all",
            &"-CRLfile",
            &crl,
            &"-CAfile",
            &root,
            &"-untrusted",
            &intermediate,
            &leaf,
        ])
    } else {
        openssl(&[
            &"verify",
            &"-CAfile",
            &root,
            &"-untrusted",
            &intermediate,
            &leaf,
        ])
    }
}

#[test]
fn every_key_type_gives_a_chain_openssl_accepts() {
    for key_alg in KeyAlg::ALL {
        let Some(mut pki) = or_skip(TestPki::with_key_alg(key_alg)) else {
            return;
        };
        let server = pki.issue(&CertSpec::localhost_server("server")).unwrap();
        let Some((ok, out)) = verify(&pki, server.cert_path(), true) else {
            return;
        };
        assert!(ok, "{key_alg:?}: {out}");
        // The key file is readable by OpenSSL and matches the certificate.
        let Some((ok, key_pub)) = openssl(&[&"pkey", &"-in", &server.key_path(), &"-pubout"])
        else {
            return;
        };
        assert!(ok, "{key_alg:?} key: {key_pub}");
        let Some((ok, cert_pub)) =
            openssl(&[&"x509", &"-in", &server.cert_path(), &"-noout", &"-pubkey"])
        else {
            return;
        };
        assert!(ok);
        assert_eq!(
            key_pub, cert_pub,
            "{key_alg:?}: key and certificate must match"
        );
        let Some((_, text)) = openssl(&[&"x509", &"-in", &server.cert_path(), &"-noout", &"-text"])
        else {
            return;
        };
        let expected = match key_alg {
            KeyAlg::EcdsaP256 => "prime256v1",
            KeyAlg::Ed25519 => "ED25519",
            KeyAlg::Rsa2048 => "(2048 bit)",
            _ => unreachable!("a new key type needs a case here"),
        };
        assert!(text.contains(expected), "{key_alg:?}: {text}");
    }
}

#[test]
fn broken_certificates_fail_openssl_verify_for_their_reason() {
    let mut pki = TestPki::new().unwrap();
    let cases = [
        (
            CertSpec::client("expired").validity(Validity::Expired),
            "certificate has expired",
        ),
        (
            CertSpec::client("early").validity(Validity::NotYetValid),
            "certificate is not yet valid",
        ),
        (
            CertSpec::client("self").issued_by(IssuedBy::SelfSigned),
            "self-signed certificate",
        ),
        (
            CertSpec::client("rogue").issued_by(IssuedBy::UnknownCa),
            "unable to get local issuer certificate",
        ),
    ];
    for (spec, reason) in cases {
        let cert = pki.issue(&spec).unwrap();
        let Some((ok, out)) = verify(&pki, cert.cert_path(), false) else {
            return;
        };
        assert!(
            !ok && out.contains(reason),
            "{spec:?} must fail with {reason:?}: {out}"
        );
    }
}

#[test]
fn revocation_shows_in_the_crl_for_the_right_certificate_only() {
    let mut pki = TestPki::new().unwrap();
    let kept = pki.issue(&CertSpec::client("kept")).unwrap();
    let revoked = pki.issue(&CertSpec::client("revoked")).unwrap();
    let by_root = pki
        .issue(&CertSpec::client("by-root").issued_by(IssuedBy::Root))
        .unwrap();
    let Some((ok, out)) = verify(&pki, revoked.cert_path(), true) else {
        return;
    };
    assert!(ok, "not revoked yet: {out}");

    pki.revoke(&revoked).unwrap();
    pki.revoke(&by_root).unwrap();
    let Some((ok, out)) = verify(&pki, revoked.cert_path(), true) else {
        return;
    };
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let Some((ok, out)) = verify(&pki, by_root.cert_path(), true) else {
        return;
    };
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let Some((ok, out)) = verify(&pki, kept.cert_path(), true) else {
        return;
    };
    assert!(ok, "an unrevoked certificate stays valid: {out}");
    assert_eq!(pki.crls_der().len(), 2, "one CRL per CA");

    let self_signed = pki
        .issue(&CertSpec::client("self").issued_by(IssuedBy::SelfSigned))
        .unwrap();
    assert!(matches!(
        pki.revoke(&self_signed),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn names_and_usages_are_what_the_spec_asked_for() {
    let mut pki = TestPki::new().unwrap();
    let device = pki
        .issue(
            &CertSpec::client("device-1")
                .common_name("Device One")
                .uri("spiffe://example.org/device/1"),
        )
        .unwrap();
    let server = pki
        .issue(&CertSpec::localhost_server("server").dns_name("broker.example"))
        .unwrap();
    let Some((_, text)) = openssl(&[&"x509", &"-in", &device.cert_path(), &"-noout", &"-text"])
    else {
        return;
    };
    assert!(text.contains("CN = Device One"), "{text}");
    assert!(text.contains("URI:spiffe://example.org/device/1"), "{text}");
    assert!(
        text.contains("TLS Web Client Authentication") && !text.contains("TLS Web Server"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    let Some((_, text)) = openssl(&[&"x509", &"-in", &server.cert_path(), &"-noout", &"-text"])
    else {
        return;
    };
    assert!(
        text.contains("DNS:localhost") && text.contains("DNS:broker.example"),
        "{text}"
    );
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    // The chain file is leaf then intermediate, and its DER matches the files.
    let chain = std::fs::read_to_string(server.chain_path()).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(&server.chain_der()[1], pki.intermediate().cert_der());
    assert!(chain.ends_with(pki.intermediate().cert_pem()));
}

#[test]
fn duplicate_and_unsafe_names_are_refused() {
    let mut pki = TestPki::new().unwrap();
    pki.issue(&CertSpec::client("a")).unwrap();
    assert!(matches!(
        pki.issue(&CertSpec::client("a")),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        pki.issue(&CertSpec::client("../escape")),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn the_directory_is_removed_on_drop_unless_kept() {
    let pki = TestPki::new().unwrap();
    let dir = pki.dir().to_path_buf();
    assert!(dir.join("root-ca.pem").exists());
    drop(pki);
    assert!(!dir.exists());
    let kept = TestPki::new().unwrap().keep();
    assert!(kept.join("crl.pem").exists());
    std::fs::remove_dir_all(kept).unwrap();
}

/// A PKI written into a named directory stays there, and refuses a
/// directory that already holds something; the CA keys, written only when
/// asked, are the CAs' keys: openssl issues a certificate with the
/// intermediate's key that verifies against the root.
#[test]
fn a_kept_pki_and_its_ca_keys_issue_more_certificates() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("pki");
    let pki = TestPki::builder().directory(&dir).build().unwrap();
    assert_eq!(pki.dir(), dir);
    assert!(
        !dir.join("root-ca.key").exists(),
        "CA keys stay in memory unless asked"
    );
    let (root_key, intermediate_key) = pki.write_ca_keys().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for key in [&root_key, &intermediate_key] {
            assert_eq!(
                std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    for (cert, key) in [
        (pki.root().cert_path(), &root_key),
        (pki.intermediate().cert_path(), &intermediate_key),
    ] {
        let Some((ok, from_cert)) = openssl(&[&"x509", &"-noout", &"-pubkey", &"-in", &cert])
        else {
            return;
        };
        assert!(ok, "{from_cert}");
        let (ok, from_key) = openssl(&[&"pkey", &"-pubout", &"-in", key]).unwrap();
        assert!(ok, "{from_key}");
        assert_eq!(from_cert, from_key, "{key:?} is the key of {cert:?}");
    }
    let leaf_key = dir.join("extra.key");
    let csr = dir.join("extra.csr");
    let leaf = dir.join("extra.pem");
    let (ok, out) = openssl(&[
        &"req",
        &"-new",
        &"-newkey",
        &"ec",
        &"-pkeyopt",
        &"ec_paramgen_curve:P-256",
        &"-nodes",
        &"-subj",
        &"/CN=extra",
        &"-keyout",
        &leaf_key,
        &"-out",
        &csr,
    ])
    .unwrap();
    assert!(ok, "{out}");
    let (ok, out) = openssl(&[
        &"x509",
        &"-req",
        &"-in",
        &csr,
        &"-CA",
        &pki.intermediate().cert_path(),
        &"-CAkey",
        &intermediate_key,
        &"-days",
        &"1",
        &"-out",
        &leaf,
    ])
    .unwrap();
    assert!(ok, "{out}");
    let (ok, out) = verify(&pki, &leaf, false).unwrap();
    assert!(ok, "openssl verify: {out}");
    drop(pki);
    assert!(
        dir.join("root-ca.pem").exists(),
        "a named directory is kept"
    );
    match TestPki::builder().directory(&dir).build() {
        Err(Error::InvalidRequest(message)) => assert!(message.contains("not empty"), "{message}"),
        other => panic!("a non-empty directory must be refused, got {other:?}"),
    }
}
