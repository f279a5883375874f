//! A small HTTPS server on a free loopback port, for tests of clients that
//! fetch from an endpoint (JWKS): its answer, status and delay can be
//! changed while it runs, and it counts the requests it answered.
//!
//! It speaks just enough HTTP/1.1 for a GET: it reads the request head,
//! answers with `Connection: close` and closes. Each connection has its
//! own thread, so a delayed answer does not hold up the next request.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::error::{Error, Result};
use crate::pki::IssuedCert;

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

#[derive(Debug)]
struct Shared {
    reply: Mutex<Reply>,
    requests: AtomicUsize,
    stopped: AtomicBool,
}

/// A running HTTPS server; stopped when dropped.
#[derive(Debug)]
pub struct HttpsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HttpsServer {
    /// Starts a server presenting `cert` (issue it with
    /// `CertSpec::localhost_server`), answering `200` with an empty JSON
    /// object until told otherwise.
    ///
    /// # Errors
    /// The certificate is unusable or no port could be bound.
    pub fn start(cert: &IssuedCert) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_no_client_auth()
                    .with_single_cert(cert.chain_der().to_vec(), cert.key_der())
            })
            .map_err(|e| Error::InvalidRequest(format!("HTTPS server certificate: {e}")))?;
        let config = Arc::new(config);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding the HTTPS server", "127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("binding the HTTPS server", "127.0.0.1:0", e))?;
        let shared = Arc::new(Shared {
            reply: Mutex::new(Reply {
                status: 200,
                body: "{}".into(),
                delay: Duration::ZERO,
            }),
            requests: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("testkit-https".into())
            .spawn(move || accept(&listener, &config, &accepting))
            .map_err(|e| Error::io("spawning the HTTPS server", "thread", e))?;
        Ok(Self { addr, shared })
    }

    /// `https://localhost:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers `200` with `body` from now on.
    pub fn set_body(&self, body: impl Into<String>) {
        let mut reply = self.reply();
        reply.status = 200;
        reply.body = body.into();
    }

    /// Answers with `status` (and the current body) from now on: 503 for an
    /// endpoint that is down.
    pub fn set_status(&self, status: u16) {
        self.reply().status = status;
    }

    /// Waits `delay` before answering each request from now on: a slow
    /// endpoint.
    pub fn set_delay(&self, delay: Duration) {
        self.reply().delay = delay;
    }

    /// Requests answered (or being answered) so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    fn reply(&self) -> std::sync::MutexGuard<'_, Reply> {
        self.shared
            .reply
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept(listener: &TcpListener, config: &Arc<ServerConfig>, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let config = Arc::clone(config);
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("testkit-https-conn".into())
            .spawn(move || {
                // A client that hangs up or fails the handshake is its own
                // business: the test sees it on the client's side.
                let _ = serve(stream, config, &shared);
            });
    }
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let connection = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = BufReader::new(StreamOwned::new(connection, stream));
    let mut line = String::new();
    loop {
        line.clear();
        if tls.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let reply = shared
        .reply
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    std::thread::sleep(reply.delay);
    let head = format!(
        "HTTP/1.1 {} Test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let tls = tls.get_mut();
    tls.write_all(head.as_bytes())?;
    tls.write_all(reply.body.as_bytes())?;
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()
}
