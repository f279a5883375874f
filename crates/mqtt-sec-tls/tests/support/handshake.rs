//! An in-memory TLS handshake between a rustls client and server: no
//! sockets, so tests and benchmarks measure TLS alone.

use std::sync::Arc;

use mqtt_sec_tls::rustls::pki_types::ServerName;
use mqtt_sec_tls::rustls::{
    ClientConfig, ClientConnection, Connection, Error, HandshakeKind, ServerConfig,
    ServerConnection,
};

/// Which side failed, and how.
#[derive(Debug)]
#[allow(dead_code, reason = "tests inspect different sides")]
pub(crate) enum Failure {
    Client(Error),
    Server(Error),
}

/// Runs a handshake and says whether it was full or resumed; the client
/// then holds any resumption ticket in its configuration's session store.
pub(crate) fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    name: &str,
) -> Result<HandshakeKind, Failure> {
    let name = ServerName::try_from(name.to_owned()).expect("a valid name");
    let mut client =
        Connection::from(ClientConnection::new(Arc::clone(client), name).map_err(Failure::Client)?);
    let mut server =
        Connection::from(ServerConnection::new(Arc::clone(server)).map_err(Failure::Server)?);
    let mut buffer = Vec::with_capacity(16 * 1024);
    for _ in 0..16 {
        while client.wants_write() {
            buffer.clear();
            client.write_tls(&mut buffer).expect("writing to memory");
            let mut slice = &buffer[..];
            while !slice.is_empty() {
                server.read_tls(&mut slice).expect("reading from memory");
            }
            server.process_new_packets().map_err(Failure::Server)?;
        }
        while server.wants_write() {
            buffer.clear();
            server.write_tls(&mut buffer).expect("writing to memory");
            let mut slice = &buffer[..];
            while !slice.is_empty() {
                client.read_tls(&mut slice).expect("reading from memory");
            }
            client.process_new_packets().map_err(Failure::Client)?;
        }
        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write()
        {
            return Ok(client.handshake_kind().unwrap_or(HandshakeKind::Full));
        }
    }
    panic!("the handshake did not finish");
}
