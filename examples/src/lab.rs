//! What every example sets up: a throwaway PKI, TLS configurations for the
//! broker and its clients, and waiting for a connection.

use std::sync::Arc;
use std::time::Duration;

use mqtt_sec_testkit::{IssuedCert, TestPki};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientAuth, ClientTls, Identity, PinSet, Revocation, ServerTls, TrustRoots};
use rumqttc::{Event, EventLoop, Packet};

/// The error type of the examples.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A broker configuration presenting `server` and requiring client
/// certificates from the PKI's root (mTLS).
///
/// # Errors
/// When a file cannot be read or the configuration is refused.
pub fn server_tls(pki: &TestPki, server: &IssuedCert) -> Result<ServerTls, Error> {
    Ok(ServerTls::builder(Arc::new(ring::default_provider()))
        .identity(Identity::from_pem_files(
            server.chain_path(),
            server.key_path(),
        )?)
        .client_auth(ClientAuth::Required {
            roots: TrustRoots::new().pem_file(pki.root().cert_path())?,
            revocation: Revocation::new(),
        })
        .build()?)
}

/// A client configuration trusting the PKI's root, requiring `pins`, and
/// authenticating with `identity`.
///
/// # Errors
/// When a file cannot be read or the configuration is refused.
pub fn client_tls(pki: &TestPki, pins: PinSet, identity: &IssuedCert) -> Result<ClientTls, Error> {
    Ok(ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path())?)
        .pins(pins)
        .identity(Identity::from_pem_files(
            identity.chain_path(),
            identity.key_path(),
        )?)
        .build()?)
}

/// Polls until the first CONNACK, or the first error, within 10 s.
///
/// # Errors
/// The connection error, as text.
pub async fn connected(events: &mut EventLoop) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("no CONNACK within 10 s".into()),
        }
    }
}

/// Keeps polling an event loop in the background (retrying after errors).
pub fn keep_polling(mut events: EventLoop) {
    tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
}

/// Runs an example's async body on a tokio runtime and turns its report into
/// the exit status (0 only when every expectation held).
pub fn run_example<F>(body: F) -> std::process::ExitCode
where
    F: for<'a> FnOnce(
        &'a mut crate::Report,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), Error>> + 'a>,
    >,
{
    let mut report = crate::Report::new();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            if let Err(error) = runtime.block_on(body(&mut report)) {
                report.expect(format!("no error ({error})"), false);
            }
        }
        Err(error) => report.expect(format!("a tokio runtime ({error})"), false),
    }
    report.finish()
}

/// Receives the next item within 5 s.
pub async fn next<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .flatten()
}

/// A throwaway PKI with the broker's certificate, and the pins a client
/// uses for it: its key, with the key it will rotate to as the backup.
///
/// # Errors
/// When the PKI cannot be made.
pub fn pinned_broker() -> Result<(TestPki, IssuedCert, PinSet), Error> {
    use mqtt_sec_testkit::CertSpec;
    use mqtt_sec_tls::Pin;
    let mut pki = TestPki::new()?;
    let server = pki.issue(&CertSpec::localhost_server("broker"))?;
    let next = pki.issue(&CertSpec::localhost_server("broker-next"))?;
    let pins = PinSet::builder([Pin::from_certificate(server.cert_der())?])
        .backup([Pin::from_certificate(next.cert_der())?])
        .build()?;
    Ok((pki, server, pins))
}
