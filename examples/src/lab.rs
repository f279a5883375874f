//! What every example sets up: a throwaway PKI, TLS configurations for the
//! broker and its clients, and waiting for a connection.

use std::sync::Arc;
use std::time::Duration;

use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_testkit::{CertSpec, IssuedCert, TestPki};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientAuth, ClientTls, Identity, PinSet, Revocation, ServerTls, TrustRoots};
use rumqttc::{Event, EventLoop, MqttOptions, Packet};

use crate::Report;
use crate::args::{BrokerArgs, RealBroker};
use crate::broker::{AuthFn, EmbeddedBroker};

/// The error type of the examples.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A broker configuration presenting `server` and requiring client
/// certificates from the PKI's root (mTLS).
///
/// # Errors
/// When a file cannot be read or the configuration is refused.
pub fn server_tls(pki: &TestPki, server: &IssuedCert) -> Result<ServerTls, Error> {
    Ok(ServerTls::builder(Arc::new(ring::default_provider()))
        .client_auth(ClientAuth::Required {
            roots: TrustRoots::new().pem_file(pki.root().cert_path())?,
            revocation: Revocation::new(),
        })
        .identity(Identity::from_pem_files(
            server.chain_path(),
            server.key_path(),
        )?)
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
                let error: &(dyn std::error::Error + 'static) = &*error;
                report.expect(format!("no error ({})", mqtt_sec_tls::Chain(error)), false);
            }
        }
        Err(error) => report.expect(format!("a tokio runtime ({error})"), false),
    }
    report.finish()
}

/// For the examples that start the system's mosquitto: when it cannot be
/// started for want of the program, says so and how to get it, and returns
/// the exit status (2) for `main` to return.
pub fn without_mosquitto(example: &str) -> Option<std::process::ExitCode> {
    let probe = mqtt_sec_testkit::Mosquitto::builder()
        .plain_listener()
        .start();
    let Err(missing @ mqtt_sec_testkit::Error::ToolMissing { .. }) = probe else {
        return None;
    };
    eprintln!("{example}: {missing}");
    eprintln!("install mosquitto 2.0, for example: sudo apt install mosquitto");
    Some(std::process::ExitCode::from(2))
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

/// Where an example's clients connect: the embedded broker behind mTLS with
/// a throwaway PKI (each client gets its own certificate), or the real
/// broker given with `--broker` (every client presents `--cert`).
#[derive(Debug)]
pub enum Lab {
    /// The embedded broker (the default).
    Embedded {
        /// The throwaway PKI.
        pki: Box<TestPki>,
        /// The running broker.
        broker: EmbeddedBroker,
        /// The broker's pins (its key, and its next key as the backup).
        pins: PinSet,
    },
    /// A real broker.
    Real(RealBroker),
}

impl Lab {
    /// Starts the embedded broker (`auth` decides every CONNECT), or
    /// prepares the connections to the broker given with `--broker`.
    ///
    /// # Errors
    /// When the broker cannot be started or reached, or a file is unusable.
    pub fn start(
        args: &BrokerArgs,
        auth: Option<Arc<AuthFn>>,
        report: &mut Report,
    ) -> Result<Self, Error> {
        if let Some(real) = args.real_broker()? {
            report.step(format!("use the broker at {}", real.url()));
            if args.pins.is_empty() {
                report.detail("its pin, learned on first connection (pass --pin to give it):");
            }
            for pin in real.pins().pins() {
                report.detail(format!("pin {pin}"));
            }
            if !real.has_identity() {
                report.detail("no --cert/--key: server-authenticated TLS only");
            }
            return Ok(Self::Real(real));
        }
        report.step("make a throwaway PKI and start the embedded broker (mTLS)");
        let (pki, server, pins) = pinned_broker()?;
        let broker = EmbeddedBroker::start(&server_tls(&pki, &server)?, auth)?;
        report.detail(format!("listening on {}", broker.url()));
        Ok(Self::Embedded {
            pki: Box::new(pki),
            broker,
            pins,
        })
    }

    /// The broker's `mqtts://` URL.
    pub fn url(&self) -> String {
        match self {
            Self::Embedded { broker, .. } => broker.url(),
            Self::Real(real) => real.url().to_owned(),
        }
    }

    /// The pins of the broker's key.
    pub fn pins(&self) -> &PinSet {
        match self {
            Self::Embedded { pins, .. } => pins,
            Self::Real(real) => real.pins(),
        }
    }

    /// The embedded broker, when the example runs on it.
    pub fn embedded(&self) -> Option<&EmbeddedBroker> {
        match self {
            Self::Embedded { broker, .. } => Some(broker),
            Self::Real(_) => None,
        }
    }

    /// TLS for the client `name`, requiring the broker's pins.
    ///
    /// # Errors
    /// When a certificate cannot be issued or a file is unusable.
    pub fn client_tls(&mut self, name: &str) -> Result<ClientTls, Error> {
        match self {
            Self::Embedded { pki, pins, .. } => {
                let cert = pki.issue(&CertSpec::client(name))?;
                client_tls(pki, pins.clone(), &cert)
            }
            Self::Real(real) => real.client_tls(real.pins().clone()),
        }
    }

    /// Options for the client `name` (its client id): TLS, and on a real
    /// broker the `--username` credentials given.
    ///
    /// # Errors
    /// As [`Lab::client_tls`].
    pub fn options(&mut self, name: &str) -> Result<MqttOptions, Error> {
        let mut options = self.client_tls(name)?.mqtt_options(&self.url(), name)?;
        if let Self::Real(real) = self
            && let Some((user, password)) = real.credentials()
        {
            options.set_credentials(user, password.expose_secret());
        }
        Ok(options)
    }
}
