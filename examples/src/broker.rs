//! The examples' embedded broker, so that they run with no broker installed:
//! rumqttd routes MQTT in-process on a loopback port, and a TLS terminator
//! built from an mqtt-sec-tls `ServerTls` (TLS or mTLS) sits in front of it.
//! Terminating TLS ourselves keeps one TLS stack (rustls 0.23 with ring) and
//! lets the examples use our own server configuration; rumqttd's TLS features
//! stay off. Authentication is a callback rumqttd calls for every CONNECT.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_tls::ServerTls;

/// Decides a CONNECT: client id, username, password.
pub type AuthFn = dyn Fn(&str, &str, &str) -> bool + Send + Sync;

/// SHA-256 fingerprints (`AB:CD:...`) of the client certificates presented,
/// one per accepted TLS connection, in order.
type Presented = Arc<std::sync::Mutex<Vec<String>>>;

/// A running broker; it lives until the process ends.
#[derive(Debug)]
pub struct EmbeddedBroker {
    tls_address: SocketAddr,
    presented: Presented,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn rumqttd_config(port: u16) -> Result<rumqttd::Config, String> {
    toml::from_str(&format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 10000
max_payload_size = 65536
max_inflight_count = 100
dynamic_filters = true
"#
    ))
    .map_err(|e| format!("rumqttd configuration: {e}"))
}

impl EmbeddedBroker {
    /// Starts rumqttd and a TLS front end with `tls`. With `auth`, it decides
    /// every CONNECT (and a CONNECT without username and password is
    /// refused); without, the client certificate (mTLS) is the only check.
    ///
    /// # Errors
    /// When a port cannot be bound or rumqttd does not come up within 10 s.
    pub fn start(tls: &ServerTls, auth: Option<Arc<AuthFn>>) -> Result<Self, String> {
        let io = |e: std::io::Error| e.to_string();
        let mqtt_port = free_port().map_err(io)?;
        let mut config = rumqttd_config(mqtt_port)?;
        let server = config
            .v4
            .as_mut()
            .and_then(|servers| servers.get_mut("1"))
            .ok_or("rumqttd configuration without the v4 server")?;
        if let Some(auth) = auth {
            server.set_auth_handler(move |client_id: String, user: String, pass: String| {
                let auth = Arc::clone(&auth);
                async move { auth(&client_id, &user, &pass) }
            });
        }
        std::thread::spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                eprintln!("embedded rumqttd stopped: {error}");
            }
        });
        let mqtt_address = SocketAddr::from(([127, 0, 0, 1], mqtt_port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(mqtt_address).is_err() {
            if Instant::now() > deadline {
                return Err("rumqttd did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }

        let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let tls_address = listener.local_addr().map_err(io)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let presented = Presented::default();
        let log = Arc::clone(&presented);
        std::thread::spawn(move || terminate_tls(listener, acceptor, mqtt_address, log));
        Ok(EmbeddedBroker {
            tls_address,
            presented,
        })
    }

    /// The TLS listener's address.
    pub fn address(&self) -> SocketAddr {
        self.tls_address
    }

    /// The fingerprints of the client certificates presented so far.
    pub fn client_certificates(&self) -> Vec<String> {
        self.presented
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    /// `mqtts://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.tls_address.port())
    }
}

/// Accepts TLS connections and relays their bytes to rumqttd. A failed
/// handshake (untrusted client certificate, wrong pin on the client side)
/// just closes that connection.
fn terminate_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    mqtt: SocketAddr,
    presented: Presented,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("TLS front end: {error}");
            return;
        }
    };
    runtime.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let presented = Arc::clone(&presented);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let fingerprint = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| CertificateIdentity::from_der(leaf).ok())
                    .map(|identity| identity.fingerprint_hex());
                if let (Some(fingerprint), Ok(mut log)) = (fingerprint, presented.lock()) {
                    log.push(fingerprint);
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(mqtt).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
}
