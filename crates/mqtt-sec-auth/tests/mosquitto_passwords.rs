//! Interop with mosquitto 2.0: files written by `mosquitto_passwd` verify
//! with our code, and files we write are accepted by a real broker (right
//! password connects, wrong one is refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile, PasswordHash, Scheme};
use mqtt_sec_testkit::client::{ClientFailure, TestClient};
use mqtt_sec_testkit::{Mosquitto, PasswordFile as BrokerPasswords, or_skip};
use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions};

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

#[test]
fn files_written_by_mosquitto_passwd_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    let users = [
        ("alice", "correct horse"),
        ("bob", "p\u{e4}ssw\u{f6}rd with spaces"),
        ("carol", "x"),
    ];
    let file = users
        .iter()
        .fold(BrokerPasswords::new(), |f, (u, p)| f.user(u, p));
    let Some(()) = or_skip(file.write(&path)) else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = PasswordFile::parse(&text).unwrap();
    assert_eq!(parsed.len(), 3);
    for (user, password) in users {
        let hash = parsed.get(user).unwrap();
        assert_eq!(hash.scheme(), Scheme::MosquittoPbkdf2Sha512);
        assert_eq!(hash.iterations().get(), 101, "mosquitto_passwd 2.0's count");
        assert!(parsed.verify(user, &secret(password)), "{user}");
        assert!(
            !parsed.verify(user, &secret(&format!("{password}!"))),
            "{user}"
        );
    }
    // Written back unchanged.
    assert_eq!(parsed.to_string(), text);
}

fn options(id: &str, broker: &Mosquitto, user: &str, password: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, broker.host(), broker.plain_port().unwrap());
    o.set_credentials(user, password);
    o
}

fn refused(result: Result<TestClient, ClientFailure>) -> ConnectReturnCode {
    match result {
        Err(ClientFailure::Connection(ConnectionError::ConnectionRefused(code))) => code,
        other => panic!(
            "expected a refused CONNACK, got {:?}",
            other.map(|_| "connected")
        ),
    }
}

#[tokio::test]
async fn files_we_write_are_accepted_by_mosquitto() {
    let mut ours = PasswordFile::new();
    ours.set(
        "compat",
        &secret("compat password"),
        HashParams::MOSQUITTO_PASSWD,
    )
    .unwrap();
    ours.set(
        "strong",
        &secret("strong password"),
        HashParams::with_iterations(NonZeroU32::new(20_000).unwrap()),
    )
    .unwrap();
    // And a mosquitto 1.x `$6$` hash (from Python's hashlib), which mosquitto 2.0 still reads.
    let legacy = "legacy:$6$MDEyMzQ1Njc4OWFi$Rih70z4rY89/KlH7cbvoWRirlyO3E2DjHt6cXG9eGhKsU0fHfl2tIpXtVMXKoEP5fBPoRwUodGze/ksSNHpvRA==";
    let text = format!("{ours}{legacy}\n");
    assert!(
        PasswordFile::parse(&text)
            .unwrap()
            .verify("legacy", &secret("hello"))
    );
    let broker_file = text
        .lines()
        .fold(BrokerPasswords::new(), |f, line| f.raw_line(line));
    let builder = Mosquitto::builder()
        .plain_listener()
        .password_file(broker_file);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };

    for (user, password) in [
        ("compat", "compat password"),
        ("strong", "strong password"),
        ("legacy", "hello"),
    ] {
        TestClient::connect(options(user, &broker, user, password))
            .await
            .unwrap_or_else(|e| panic!("{user} refused: {e}"));
        let code = refused(TestClient::connect(options(user, &broker, user, "wrong")).await);
        assert!(
            matches!(
                code,
                ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
            ),
            "{user}: {code:?}"
        );
    }
    // A hash we generate is also what our own verification accepts.
    let hash: PasswordHash = ours.get("strong").unwrap().clone();
    assert!(hash.verify(&secret("strong password")));
}
