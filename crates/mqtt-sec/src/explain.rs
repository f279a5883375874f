//! rumqttc's connection errors as one sentence with the fix.
//!
//! rumqttc reports a refused pin as `TLS: I/O: invalid peer certificate:
//! Other(OtherError(PinMismatch {...}))`: the rustls error is wrapped in an
//! I/O error inside a TLS error inside the connection error. These
//! functions dig it out (with the `tls` feature, through
//! [`mqtt_sec_tls::explain`]) and say what to do.
//!
//! ```
//! use mqtt_sec::explain;
//! use mqtt_sec::rumqttc::{ConnectReturnCode, ConnectionError};
//! let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
//! let text = explain::connection_error(&refused, "broker.example");
//! assert!(text.contains("broker.example refused the login"), "{text}");
//! ```

use std::io;

use rumqttc::tokio_rustls::rustls;
use rumqttc::{ConnectReturnCode, ConnectionError, StateError};

/// The rustls error somewhere inside `error`: rumqttc and tokio-rustls
/// wrap it in I/O errors (whose `source` skips what they wrap) inside
/// TLS, state or decoding errors.
fn find_rustls<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        next = match current.downcast_ref::<io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// What went wrong with the connection to `server`, and what to do.
pub fn connection_error(error: &ConnectionError, server: &str) -> String {
    if let Some(rustls) = find_rustls(error) {
        return rustls_error(rustls, server);
    }
    match error {
        ConnectionError::ConnectionRefused(code) => refused(*code, server),
        ConnectionError::Tls(tls) => tls_error(tls, server),
        ConnectionError::Io(io) => io_error(io, server),
        ConnectionError::MqttState(state) => state_error(state, server),
        ConnectionError::NetworkTimeout => format!(
            "{server} did not complete the connection in time: check the host and port, and that a firewall lets MQTT through (raise MqttOptions::set_connection_timeout on slow links)"
        ),
        ConnectionError::FlushTimeout => format!(
            "writing to {server} timed out: the network or the broker is too slow; the next poll reconnects"
        ),
        ConnectionError::NotConnAck(packet) => format!(
            "{server} answered the CONNECT with {packet:?} instead of a CONNACK: is this an MQTT 3.1.1 broker on this port?"
        ),
        ConnectionError::RequestsDone => {
            "every client handle was dropped, so the event loop has nothing left to do".to_owned()
        }
    }
}

/// The sentence for a broker that closed the connection before its
/// CONNACK: brokers that refuse a login without a return code (rumqttd, and
/// mosquitto for some plugin and certificate refusals) end it right there.
pub(crate) fn closed_before_accepting(server: &str) -> String {
    format!(
        "{server} closed the connection before accepting it: it refused this client's login (the user name, password or token for this client id) or its certificate; the broker's log says which"
    )
}

/// Whether the broker closed the connection, rather than refusing it with
/// a return code, a TLS alert or a timeout.
pub(crate) fn closed_by_peer(error: &ConnectionError) -> bool {
    find_rustls(error).is_none()
        && match error {
            ConnectionError::MqttState(StateError::ConnectionAborted) => true,
            ConnectionError::MqttState(StateError::Io(io)) | ConnectionError::Io(io) => {
                closed_io(io)
            }
            _ => false,
        }
}

/// As [`closed_by_peer`], for MQTT 5.
pub(crate) fn closed_by_peer_v5(error: &rumqttc::v5::ConnectionError) -> bool {
    use rumqttc::v5::{ConnectionError as E, StateError as S};
    find_rustls(error).is_none()
        && match error {
            E::MqttState(S::ConnectionAborted) => true,
            E::MqttState(S::Io(io)) | E::Io(io) => closed_io(io),
            _ => false,
        }
}

fn closed_io(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
    )
}

/// What went wrong with the MQTT 5 connection to `server`, and what to do;
/// the broker's reason code (and reason string, when rumqttc passes it on)
/// is part of the sentence.
///
/// ```
/// use mqtt_sec::explain;
/// use mqtt_sec::rumqttc::v5::ConnectionError;
/// use mqtt_sec::rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
/// let banned = ConnectionError::ConnectionRefused(ConnectReturnCode::Banned);
/// assert!(explain::connection_error_v5(&banned, "b.example").contains("banned"));
/// ```
pub fn connection_error_v5(error: &rumqttc::v5::ConnectionError, server: &str) -> String {
    use rumqttc::v5::ConnectionError as E;
    if let Some(rustls) = find_rustls(error) {
        return rustls_error(rustls, server);
    }
    match error {
        E::ConnectionRefused(code) => refused_v5(*code, server),
        E::Tls(tls) => tls_error(tls, server),
        E::Io(io) => io_error(io, server),
        E::MqttState(state) => state_error_v5(state, server),
        E::Timeout(_) => format!(
            "{server} did not complete the connection in time: check the host and port, and that a firewall lets MQTT through"
        ),
        E::NotConnAck(packet) => format!(
            "{server} answered the CONNECT with {packet:?} instead of a CONNACK: is this an MQTT 5 broker on this port?"
        ),
        E::RequestsDone => {
            "every client handle was dropped, so the event loop has nothing left to do".to_owned()
        }
    }
}

fn refused_v5(code: rumqttc::v5::mqttbytes::v5::ConnectReturnCode, server: &str) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    let fix = match code {
        C::NotAuthorized | C::BadUserNamePassword | C::BadAuthenticationMethod => {
            "check the user name and password, or that the token is valid, not expired and meant for this broker (audience, issuer, the key it trusts)"
        }
        C::BadClientId | C::ClientIdentifierNotValid => {
            "use the client id the broker expects for this device (some bind it to the certificate or token)"
        }
        C::Banned => "this client is banned: ask the broker's operator",
        C::ServerUnavailable | C::ServiceUnavailable | C::ServerBusy => "retry later",
        C::ConnectionRateExceeded | C::QuotaExceeded => {
            "the client connects too often: wait before retrying (back off)"
        }
        C::UseAnotherServer | C::ServerMoved => "connect to the server the broker names",
        C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => {
            "the broker does not speak MQTT 5 on this port: use the MQTT 3.1.1 client"
        }
        C::PacketTooLarge => "the CONNECT is too large (a long token?): shorten it",
        _ => "the broker's log says why",
    };
    format!("{server} refused the connection ({code:?}): {fix}")
}

fn state_error_v5(error: &rumqttc::v5::StateError, server: &str) -> String {
    use rumqttc::v5::StateError as S;
    match error {
        S::ServerDisconnect {
            reason_code,
            reason_string,
        } => format!(
            "{server} ended the connection ({reason_code:?}{}): the next poll reconnects; if it repeats, the broker's reason says what to change",
            reason_string
                .as_deref()
                .map(|r| format!(", \"{}\"", mqtt_sec_core::text::bounded(r, 256)))
                .unwrap_or_default()
        ),
        S::ConnFail { reason } => refused_v5(*reason, server),
        S::ConnectionAborted => format!(
            "{server} closed the connection: the broker may have refused a request or the credentials expired; the next poll reconnects"
        ),
        S::AwaitPingResp => format!(
            "{server} stopped answering keep-alive pings: the connection is dead; the next poll reconnects"
        ),
        S::OutgoingPacketTooLarge { pkt_size, max } => format!(
            "a packet of {pkt_size} bytes exceeds {server}'s maximum packet size of {max}: send smaller messages"
        ),
        S::Io(io) => io_error(io, server),
        other => format!("the MQTT session with {server} broke: {other}"),
    }
}

/// What a broker's refusal of the CONNECT means.
fn refused(code: ConnectReturnCode, server: &str) -> String {
    match code {
        ConnectReturnCode::NotAuthorized => format!(
            "{server} refused the login (not authorized): check the user name and password, or that the token is valid, not expired and meant for this broker (audience, issuer, the key it trusts)"
        ),
        ConnectReturnCode::BadUserNamePassword => format!(
            "{server} refused the user name or password: check the credentials (a token minted for another broker or already expired reads the same)"
        ),
        ConnectReturnCode::BadClientId => format!(
            "{server} refused the client id: use the id the broker expects for this device (some bind it to the certificate or token)"
        ),
        ConnectReturnCode::ServiceUnavailable => {
            format!("{server} is unavailable (it said so): retry later")
        }
        ConnectReturnCode::RefusedProtocolVersion => format!(
            "{server} does not speak MQTT 3.1.1 on this port: use the MQTT 5 client, or the port the broker serves 3.1.1 on"
        ),
        ConnectReturnCode::Success => format!("{server} accepted the connection"),
    }
}

/// A TLS failure: the rustls error inside, explained, when there is one.
fn tls_error(error: &rumqttc::TlsError, server: &str) -> String {
    // (rumqttc's MQTT 5 client uses the same TLS error type.)
    match error {
        rumqttc::TlsError::Io(io) => io_error(io, server),
        rumqttc::TlsError::DNSName(_) => format!(
            "{server:?} is not a valid DNS name or IP address for TLS: connect by the name in the broker's certificate"
        ),
        other => format!("TLS with {server} could not start: {other}"),
    }
}

fn io_error(error: &io::Error, server: &str) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "nothing accepts connections at {server}: check the host and port, and that the broker runs"
        ),
        _ if closed_io(error) => format!(
            "{server} closed the connection: if this happens right after connecting, the broker refused this client (its certificate, its login or an ACL; its log says which); the next poll reconnects"
        ),
        io::ErrorKind::TimedOut => {
            format!("{server} did not answer in time: check the network and the port")
        }
        _ => format!("the connection to {server} failed: {error}"),
    }
}

fn state_error(error: &StateError, server: &str) -> String {
    match error {
        StateError::ConnectionAborted => format!(
            "{server} closed the connection: the broker may have refused a publish or subscription (mosquitto disconnects MQTT 3.1.1 clients for some ACL denials) or the credentials expired; the next poll reconnects"
        ),
        StateError::AwaitPingResp => format!(
            "{server} stopped answering keep-alive pings: the connection is dead; the next poll reconnects"
        ),
        StateError::Io(io) => io_error(io, server),
        other => format!("the MQTT session with {server} broke: {other}"),
    }
}

#[cfg(feature = "tls")]
fn rustls_error(error: &rustls::Error, server: &str) -> String {
    mqtt_sec_tls::explain(error, server)
}

#[cfg(not(feature = "tls"))]
fn rustls_error(error: &rustls::Error, server: &str) -> String {
    format!("TLS with {server} failed: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_names_the_server_and_a_fix() {
        for code in [
            ConnectReturnCode::NotAuthorized,
            ConnectReturnCode::BadUserNamePassword,
            ConnectReturnCode::BadClientId,
            ConnectReturnCode::ServiceUnavailable,
            ConnectReturnCode::RefusedProtocolVersion,
        ] {
            let text = connection_error(&ConnectionError::ConnectionRefused(code), "b.example");
            assert!(text.starts_with("b.example"), "{code:?}: {text}");
        }
        let text = connection_error(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
            "b",
        );
        assert!(
            text.contains("token") && text.contains("password"),
            "{text}"
        );
    }

    #[test]
    fn mqtt5_refusals_and_disconnects_carry_the_reason() {
        use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as C, DisconnectReasonCode};
        use rumqttc::v5::{ConnectionError as E, StateError as S};
        let text = connection_error_v5(&E::ConnectionRefused(C::NotAuthorized), "b");
        assert!(
            text.contains("NotAuthorized") && text.contains("token"),
            "{text}"
        );
        let text = connection_error_v5(&E::ConnectionRefused(C::Banned), "b");
        assert!(text.contains("banned"), "{text}");
        let text = connection_error_v5(
            &E::MqttState(S::ServerDisconnect {
                reason_code: DisconnectReasonCode::SessionTakenOver,
                reason_string: Some("another client took the id".into()),
            }),
            "b",
        );
        assert!(
            text.contains("SessionTakenOver") && text.contains("another client took the id"),
            "{text}"
        );
        let tls = E::Tls(rumqttc::TlsError::TLS(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        )));
        assert!(connection_error_v5(&tls, "b").contains("has expired"));
    }

    #[test]
    fn a_rustls_error_inside_an_io_error_is_found() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = ConnectionError::Tls(rumqttc::TlsError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls,
        )));
        let text = connection_error(&wrapped, "b.example");
        assert!(text.contains("not trusted"), "{text}");
        let plain = ConnectionError::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(connection_error(&plain, "b.example").contains("nothing accepts connections"));
        // The alert a broker sends for an expired client certificate, as
        // rumqttc reports it when it arrives after the handshake.
        let alert = ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::mqttbytes::Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateExpired),
            )),
        ));
        let text = connection_error(&alert, "b.example");
        assert!(text.contains("certificate has expired: renew it"), "{text}");
        let aborted = ConnectionError::MqttState(StateError::ConnectionAborted);
        assert!(connection_error(&aborted, "b.example").contains("closed the connection"));
    }

    const CLOSED: [io::ErrorKind; 4] = [
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::UnexpectedEof,
        io::ErrorKind::BrokenPipe,
    ];
    const NOT_CLOSED: [io::ErrorKind; 3] = [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::TimedOut,
        io::ErrorKind::InvalidData,
    ];

    /// A close is an I/O error of a closed socket (from rumqttc's reader or
    /// its state machine) or an abort; a refusal, a timeout or a TLS error
    /// inside an I/O error is not.
    #[test]
    fn a_close_by_the_broker_is_told_from_other_failures() {
        use rumqttc::v5::{ConnectionError as E5, StateError as S5};
        let io = io::Error::from;
        for kind in CLOSED {
            assert!(closed_by_peer(&ConnectionError::Io(io(kind))), "{kind:?}");
            assert!(closed_by_peer(&ConnectionError::MqttState(StateError::Io(
                io(kind)
            ))));
            assert!(closed_by_peer_v5(&E5::Io(io(kind))), "{kind:?}");
            assert!(closed_by_peer_v5(&E5::MqttState(S5::Io(io(kind)))));
        }
        for kind in NOT_CLOSED {
            assert!(!closed_by_peer(&ConnectionError::Io(io(kind))), "{kind:?}");
            assert!(!closed_by_peer(&ConnectionError::MqttState(
                StateError::Io(io(kind))
            )));
            assert!(!closed_by_peer_v5(&E5::Io(io(kind))), "{kind:?}");
            assert!(!closed_by_peer_v5(&E5::MqttState(S5::Io(io(kind)))));
        }
        assert!(closed_by_peer(&ConnectionError::MqttState(
            StateError::ConnectionAborted
        )));
        assert!(closed_by_peer_v5(&E5::MqttState(S5::ConnectionAborted)));
        assert!(!closed_by_peer(&ConnectionError::NetworkTimeout));
        assert!(!closed_by_peer_v5(&E5::RequestsDone));
        let alert = || {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateExpired),
            )
        };
        assert!(!closed_by_peer(&ConnectionError::Io(alert())));
        assert!(!closed_by_peer_v5(&E5::Io(alert())));
    }

    #[test]
    fn each_io_failure_reads_as_what_happened() {
        for kind in CLOSED {
            let text = io_error(&io::Error::from(kind), "b");
            assert!(
                text.starts_with("b closed the connection"),
                "{kind:?}: {text}"
            );
        }
        let text = io_error(&io::Error::from(io::ErrorKind::TimedOut), "b");
        assert!(text.contains("did not answer in time"), "{text}");
        let text = io_error(&io::Error::other("odd"), "b");
        assert_eq!(text, "the connection to b failed: odd");
    }
}
