//! What the broker asks, as safe Rust values, and what the plugin answers.
//!
//! The FFI layer builds these from mosquitto's event structs without
//! interpreting anything: strings stay bytes (the broker's strings may be
//! NULL, non-UTF-8 or binary), and every decision about them is made here,
//! where a bad value becomes a refusal instead of a panic.

/// mosquitto's access bits of an ACL check (`MOSQ_ACL_*`).
pub mod access {
    /// A message is about to be delivered to the client.
    pub const READ: i32 = 0x01;
    /// The client publishes.
    pub const WRITE: i32 = 0x02;
    /// The client subscribes.
    pub const SUBSCRIBE: i32 = 0x04;
    /// The client unsubscribes.
    pub const UNSUBSCRIBE: i32 = 0x08;
}

/// What the broker knows about a connected (or connecting) client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client<'a> {
    /// Which connection this is: an opaque number, the same in every event
    /// of one connection, that the plugin keeps per-connection state under.
    pub key: usize,
    /// The client id, as the broker holds it.
    pub id: Option<&'a [u8]>,
    /// The user name the broker holds for the client (after authentication,
    /// the one a plugin may have set).
    pub username: Option<&'a [u8]>,
    /// The peer address, as mosquitto prints it (logins only).
    pub address: Option<&'a [u8]>,
    /// 3, 4 or 5 (MQTT 3.1, 3.1.1, 5), or another number the broker gave
    /// (logins and publishes only; 0 otherwise, and 0 for the blank client
    /// mosquitto checks a retained message's publisher with).
    pub protocol_version: i32,
}

/// A CONNECT to authenticate (`MOSQ_EVT_BASIC_AUTH`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Login<'a> {
    /// Who connects.
    pub client: Client<'a>,
    /// The CONNECT user name, if any.
    pub username: Option<&'a [u8]>,
    /// The CONNECT password, if any: bytes, never assumed to be text. The
    /// broker hands it over NUL-terminated, so it ends at the first NUL.
    pub password: Option<&'a [u8]>,
    /// The DER client certificate the TLS handshake verified, if any.
    pub certificate: Option<&'a [u8]>,
}

/// An access to decide (`MOSQ_EVT_ACL_CHECK`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclCheck<'a> {
    /// Who.
    pub client: Client<'a>,
    /// The topic name (read, write) or filter (subscribe, unsubscribe).
    pub topic: Option<&'a [u8]>,
    /// One of the [`access`] bits, or anything else the broker sent.
    pub access: i32,
    /// The message's QoS (read, write) or the requested QoS (subscribe).
    pub qos: u8,
    /// The message's retain flag.
    pub retain: bool,
    /// The message's payload length in bytes (read, write).
    pub payload_len: u32,
    /// The message's payload (publishes only; empty otherwise).
    pub payload: &'a [u8],
}

/// The answer to a [`Login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// Accept the connection, and when `username` is set make it the
    /// client's user name for every later check (the identity the method
    /// verified, not the one the client claimed).
    Allow {
        /// The verified user name to set.
        username: Option<String>,
    },
    /// Refuse it: the client gets "not authorized".
    Deny,
}

/// The answer to an [`AclCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclVerdict {
    /// Allow the access.
    Allow,
    /// Deny it.
    Deny,
}
