//! Verified-path pins and revocation together, on a cross-certified CA: one
//! intermediate key certified by two roots, the pinned root's certificate
//! of it revoked. The pin must be found on a path that passed revocation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use mqtt_sec_tls::{
    ClientTls, Identity, Pin, PinMismatch, PinScope, PinSet, Revocation, ServerTls, TrustRoots,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use support::handshake::{Failure, handshake};
use time::{Duration, OffsetDateTime};

fn ca_params(name: &str, serial: u64, constrained: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(if constrained {
        BasicConstraints::Constrained(0)
    } else {
        BasicConstraints::Unconstrained
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(1);
    params.serial_number = Some(SerialNumber::from(serial));
    params.use_authority_key_identifier_extension = constrained;
    params
}

fn crl(issuer: &Issuer<'_, KeyPair>, revoked: Vec<u64>) -> CertificateRevocationListDer<'static> {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .into_iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: now - Duration::minutes(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).unwrap().der().clone()
}

/// Two roots; the intermediate key "Cross CA" certified by both (serials 11
/// and 12); a broker certificate from "Cross CA". Returns the roots, the
/// broker's chain (leaf, the pinned root's cross-certificate, then the
/// other), its key, the CRLs (the pinned root's revoking its
/// cross-certificate when `revoke`), and the pin of the pinned root.
struct CrossPki {
    unpinned_root: CertificateDer<'static>,
    pinned_root: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    pinned: Pin,
}

fn cross_pki(revoke: bool) -> CrossPki {
    let unpinned_key = KeyPair::generate().unwrap();
    let unpinned_params = ca_params("Unpinned Root", 1, false);
    let unpinned_root = unpinned_params.self_signed(&unpinned_key).unwrap();
    let unpinned = Issuer::new(unpinned_params, unpinned_key);

    let pinned_key = KeyPair::generate().unwrap();
    let pinned_params = ca_params("Pinned Root", 2, false);
    let pinned_root = pinned_params.self_signed(&pinned_key).unwrap();
    let pinned = Issuer::new(pinned_params, pinned_key);

    let cross_key = KeyPair::generate().unwrap();
    let by_unpinned = ca_params("Cross CA", 11, true)
        .signed_by(&cross_key, &unpinned)
        .unwrap();
    let by_pinned = ca_params("Cross CA", 12, true)
        .signed_by(&cross_key, &pinned)
        .unwrap();
    let cross = Issuer::new(ca_params("Cross CA", 11, true), cross_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.serial_number = Some(SerialNumber::from(100u64));
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf = leaf_params.signed_by(&leaf_key, &cross).unwrap();

    CrossPki {
        pinned: Pin::from_certificate(pinned_root.der()).unwrap(),
        unpinned_root: unpinned_root.der().clone(),
        pinned_root: pinned_root.der().clone(),
        chain: vec![
            leaf.der().clone(),
            by_pinned.der().clone(),
            by_unpinned.der().clone(),
        ],
        key: PrivateKeyDer::from(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        crls: vec![
            crl(&unpinned, vec![]),
            crl(&pinned, if revoke { vec![12] } else { vec![] }),
            crl(&cross, vec![]),
        ],
    }
}

fn connect(pki: CrossPki) -> Result<(), Failure> {
    let provider = Arc::new(ring::default_provider());
    let server = ServerTls::builder(provider.clone())
        .no_client_auth()
        .identity(Identity::from_der(pki.chain, pki.key))
        .build()
        .unwrap()
        .config();
    let revocation = pki
        .crls
        .into_iter()
        .fold(Revocation::new(), |r, crl| r.der(crl));
    let pins = PinSet::builder([pki.pinned])
        .backup([Pin::from_spki_der(b"offline backup key")])
        .scope(PinScope::VerifiedPath)
        .build()
        .unwrap();
    let client = ClientTls::builder(provider)
        .trust(
            TrustRoots::new()
                .certificate_der(pki.unpinned_root)
                .unwrap()
                .certificate_der(pki.pinned_root)
                .unwrap(),
        )
        .pins(pins)
        .revocation(revocation)
        .no_identity()
        .build()
        .unwrap()
        .config();
    handshake(&client, &server, "localhost").map(drop)
}

/// The review: the second path build that checks verified-path pins
/// passed no CRLs, so the pin was satisfied by the path through the pinned
/// root's revoked cross-certificate, while normal validation succeeded on
/// the other path, through the unpinned root. The pinned path now fails
/// revocation and only the unpinned one remains: a pin mismatch.
#[test]
fn a_pin_reached_only_through_a_revoked_certificate_is_not_satisfied() {
    match connect(cross_pki(true)) {
        Err(Failure::Client(error)) => {
            assert!(PinMismatch::from_rustls(&error).is_some(), "{error:?}")
        }
        other => panic!("the pin must not be satisfied: {other:?}"),
    }
    // Without the revocation the same pin is found on the pinned path.
    connect(cross_pki(false)).unwrap();
}
