//! A mosquitto with the plugin loaded, configured from files in a temporary
//! directory, and clients for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_sec_testkit::client::{ClientFailure, TestClient};
use mqtt_sec_testkit::{Mosquitto, MosquittoBuilder, PasswordFile, or_skip};
use rumqttc::MqttOptions;
use tempfile::TempDir;

/// The plugin library cargo built with this test binary.
pub(crate) fn plugin_library() -> PathBuf {
    mqtt_sec_testkit::built_cdylib("mqtt-sec-mosquitto").unwrap()
}

/// The plugin's configuration directory.
pub(crate) struct Files {
    pub(crate) dir: TempDir,
}

impl Files {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("mqtt-sec-plugin-")
                .tempdir()
                .unwrap(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A password file hashed by mosquitto_passwd.
    pub(crate) fn passwords(&self, name: &str, users: &[(&str, &str)]) -> PathBuf {
        let mut file = PasswordFile::new();
        for (user, password) in users {
            file = file.user(user, password);
        }
        let path = self.path(name);
        file.write(&path).unwrap();
        path
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.path("mqtt-sec.toml")
    }
}

/// Starts mosquitto (plain listener) with the plugin and `files`' config;
/// `None` when mosquitto is missing outside CI.
pub(crate) fn start(files: &Files) -> Option<Mosquitto> {
    or_skip(try_start(files))
}

pub(crate) fn try_start(files: &Files) -> mqtt_sec_testkit::Result<Mosquitto> {
    try_start_with(files, MosquittoBuilder::plain_listener)
}

/// As [`start`], with the listeners `listeners` adds.
pub(crate) fn start_with(
    files: &Files,
    listeners: impl FnOnce(MosquittoBuilder) -> MosquittoBuilder,
) -> Option<Mosquitto> {
    or_skip(try_start_with(files, listeners))
}

pub(crate) fn try_start_with(
    files: &Files,
    listeners: impl FnOnce(MosquittoBuilder) -> MosquittoBuilder,
) -> mqtt_sec_testkit::Result<Mosquitto> {
    listeners(Mosquitto::builder())
        .plugin(
            plugin_library(),
            [("config", files.config().to_str().unwrap().to_owned())],
        )
        .start()
}

pub(crate) fn options(
    broker: &Mosquitto,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, broker.host(), broker.plain_port().unwrap());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    options
}

pub(crate) async fn connect(
    broker: &Mosquitto,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Result<TestClient, ClientFailure> {
    let mut client = TestClient::connect(options(broker, client_id, login)).await?;
    client.set_wait(Duration::from_secs(5));
    Ok(client)
}

/// Whether a CONNECT was refused as not authorized (3.1.1 return code 5).
pub(crate) fn refused(result: Result<TestClient, ClientFailure>) -> bool {
    match result {
        Err(ClientFailure::Connection(rumqttc::ConnectionError::ConnectionRefused(code))) => {
            code == rumqttc::ConnectReturnCode::NotAuthorized
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => false,
    }
}

/// A raw MQTT 3.1.1 CONNECT with arbitrary user name and password bytes
/// (rumqttc only sends text); returns the CONNACK return code, or `None`
/// when the broker closed the connection without one.
pub(crate) fn raw_connect(
    broker: &Mosquitto,
    client_id: &[u8],
    username: Option<&[u8]>,
    password: Option<&[u8]>,
) -> Option<u8> {
    raw_connect_from(broker, None, client_id, username, password)
}

/// As [`raw_connect`], from the loopback address `source` (any of
/// 127.0.0.0/8 on Linux), so that a test can log in from several addresses.
pub(crate) fn raw_connect_from(
    broker: &Mosquitto,
    source: Option<std::net::IpAddr>,
    client_id: &[u8],
    username: Option<&[u8]>,
    password: Option<&[u8]>,
) -> Option<u8> {
    let mut body = Vec::new();
    let field = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(&mut body, b"MQTT");
    body.push(4);
    let mut flags = 0x02; // clean session
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes());
    field(&mut body, client_id);
    if let Some(username) = username {
        field(&mut body, username);
    }
    if let Some(password) = password {
        field(&mut body, password);
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    let host: std::net::IpAddr = broker.host().parse().unwrap();
    let server = std::net::SocketAddr::new(host, broker.plain_port().unwrap());
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(source) = source {
        socket
            .bind(&std::net::SocketAddr::new(source, 0).into())
            .unwrap();
    }
    socket.connect(&server.into()).unwrap();
    let mut stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    match stream.read_exact(&mut connack) {
        Ok(()) if connack[0] == 0x20 => Some(connack[3]),
        _ => None,
    }
}

/// The CONNACK code an MQTT 5 client gets.
pub(crate) async fn v5_connack(
    port: u16,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> rumqttc::v5::mqttbytes::v5::ConnectReturnCode {
    let mut options = rumqttc::v5::MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    v5_connack_with(options).await
}

/// The CONNACK code an MQTT 5 client with `options` gets.
pub(crate) async fn v5_connack_with(
    options: rumqttc::v5::MqttOptions,
) -> rumqttc::v5::mqttbytes::v5::ConnectReturnCode {
    use rumqttc::v5::{AsyncClient, ConnectionError, Event, Incoming};
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll())
            .await
            .unwrap()
        {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => return ack.code,
            Ok(_) => continue,
            Err(ConnectionError::ConnectionRefused(code)) => return code,
            Err(other) => panic!("{other}"),
        }
    }
}
