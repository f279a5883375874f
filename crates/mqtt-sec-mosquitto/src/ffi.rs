//! The C boundary, and nothing else: mosquitto's plugin API version 5 as
//! mosquitto 2.0 (`mosquitto_broker.h`, `mosquitto_plugin.h`) defines it.
//!
//! This is the only module with `unsafe`. It reads the broker's event
//! structs into the safe values of [`crate::event`], calls [`Plugin`], and
//! turns the answer into a return code. Every callback runs inside
//! `catch_unwind` and fails closed: a panic denies (and is logged).
//!
//! The broker's functions are looked up with `dlsym` when the plugin
//! starts, not linked: they are exported by the `mosquitto` executable,
//! and a library that named them at link time could not be linked into
//! the test binaries that exercise this crate's safe code. A broker that
//! lacks one of them fails the plugin's start.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use crate::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login};
use crate::log::{Level, Log};
use crate::plugin::Plugin;

/// `MOSQ_ERR_SUCCESS`.
pub(crate) const MOSQ_ERR_SUCCESS: c_int = 0;
/// `MOSQ_ERR_INVAL`.
pub(crate) const MOSQ_ERR_INVAL: c_int = 3;
/// `MOSQ_ERR_NOT_FOUND`.
pub(crate) const MOSQ_ERR_NOT_FOUND: c_int = 6;
/// `MOSQ_ERR_AUTH`.
pub(crate) const MOSQ_ERR_AUTH: c_int = 11;
/// `MOSQ_ERR_ACL_DENIED`.
pub(crate) const MOSQ_ERR_ACL_DENIED: c_int = 12;
/// `MOSQ_ERR_UNKNOWN`.
pub(crate) const MOSQ_ERR_UNKNOWN: c_int = 13;
/// `MOSQ_ERR_PLUGIN_DEFER`: let the next plugin (or the broker) decide.
pub(crate) const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;

/// `MOSQ_EVT_RELOAD`.
pub(crate) const MOSQ_EVT_RELOAD: c_int = 1;
/// `MOSQ_EVT_ACL_CHECK`.
pub(crate) const MOSQ_EVT_ACL_CHECK: c_int = 2;
/// `MOSQ_EVT_BASIC_AUTH`.
pub(crate) const MOSQ_EVT_BASIC_AUTH: c_int = 3;
/// `MOSQ_EVT_TICK`.
pub(crate) const MOSQ_EVT_TICK: c_int = 9;
/// `MOSQ_EVT_DISCONNECT`.
pub(crate) const MOSQ_EVT_DISCONNECT: c_int = 10;

/// The plugin API version this library speaks.
pub(crate) const PLUGIN_API_VERSION: c_int = 5;

/// `struct mosquitto_opt`.
#[repr(C)]
pub(crate) struct MosquittoOpt {
    pub(crate) key: *mut c_char,
    pub(crate) value: *mut c_char,
}

/// `struct mosquitto_evt_basic_auth`.
#[repr(C)]
pub(crate) struct EvtBasicAuth {
    pub(crate) future: *mut c_void,
    pub(crate) client: *mut c_void,
    pub(crate) username: *mut c_char,
    pub(crate) password: *mut c_char,
    pub(crate) future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_acl_check`.
#[repr(C)]
pub(crate) struct EvtAclCheck {
    pub(crate) future: *mut c_void,
    pub(crate) client: *mut c_void,
    pub(crate) topic: *const c_char,
    pub(crate) payload: *const c_void,
    pub(crate) properties: *mut c_void,
    pub(crate) access: c_int,
    pub(crate) payloadlen: u32,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_reload`.
#[repr(C)]
pub(crate) struct EvtReload {
    pub(crate) future: *mut c_void,
    pub(crate) options: *mut MosquittoOpt,
    pub(crate) option_count: c_int,
    pub(crate) future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect`.
#[repr(C)]
pub(crate) struct EvtDisconnect {
    pub(crate) future: *mut c_void,
    pub(crate) client: *mut c_void,
    pub(crate) reason: c_int,
    pub(crate) future2: [*mut c_void; 4],
}

/// `MOSQ_FUNC_generic_callback`.
type Callback = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;
type CallbackRegister =
    unsafe extern "C" fn(*mut c_void, c_int, Callback, *const c_void, *mut c_void) -> c_int;
type CallbackUnregister =
    unsafe extern "C" fn(*mut c_void, c_int, Callback, *const c_void) -> c_int;
type LogPrintf = unsafe extern "C" fn(c_int, *const c_char, ...);
type ClientString = unsafe extern "C" fn(*const c_void) -> *const c_char;
type ClientInt = unsafe extern "C" fn(*const c_void) -> c_int;
type ClientCertificate = unsafe extern "C" fn(*const c_void) -> *mut c_void;
type SetUsername = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
/// `mosquitto_broker_publish_copy(clientid, topic, payloadlen, payload, qos,
/// retain, properties)`.
type PublishCopy = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    c_int,
    *const c_void,
    c_int,
    bool,
    *mut c_void,
) -> c_int;
/// `mosquitto_kick_client_by_clientid(clientid, with_will)`: NULL kicks
/// every client, so it is only ever called with a client id.
type KickByClientId = unsafe extern "C" fn(*const c_char, bool) -> c_int;
/// OpenSSL's `i2d_X509(X509 *, unsigned char **)`.
type I2dX509 = unsafe extern "C" fn(*mut c_void, *mut *mut u8) -> c_int;
/// OpenSSL's `X509_free(X509 *)`.
type X509Free = unsafe extern "C" fn(*mut c_void);

/// The broker functions the plugin calls.
#[derive(Clone, Copy)]
struct Broker {
    callback_register: CallbackRegister,
    callback_unregister: CallbackUnregister,
    log_printf: LogPrintf,
    client_id: ClientString,
    client_username: ClientString,
    client_address: ClientString,
    client_protocol_version: ClientInt,
    set_username: SetUsername,
    publish_copy: PublishCopy,
    kick_by_client_id: KickByClientId,
    /// `mosquitto_client_certificate` and the OpenSSL functions to encode
    /// and free what it returns; `None` in a broker built without TLS.
    certificates: Option<(ClientCertificate, I2dX509, X509Free)>,
}

static BROKER: OnceLock<Broker> = OnceLock::new();

/// Looks `name` (NUL-terminated) up among the symbols of the process.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT only reads the process's symbol tables;
    // `name` is a valid NUL-terminated string.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}

impl Broker {
    fn resolve() -> Option<Self> {
        let register = symbol(c"mosquitto_callback_register")?;
        let unregister = symbol(c"mosquitto_callback_unregister")?;
        let log = symbol(c"mosquitto_log_printf")?;
        let id = symbol(c"mosquitto_client_id")?;
        let username = symbol(c"mosquitto_client_username")?;
        let address = symbol(c"mosquitto_client_address")?;
        let version = symbol(c"mosquitto_client_protocol_version")?;
        let set_username = symbol(c"mosquitto_set_username")?;
        let publish_copy = symbol(c"mosquitto_broker_publish_copy")?;
        let kick = symbol(c"mosquitto_kick_client_by_clientid")?;
        let certificates = (
            symbol(c"mosquitto_client_certificate"),
            symbol(c"i2d_X509"),
            symbol(c"X509_free"),
        );
        // SAFETY: each address is the broker's exported function of that
        // name, whose C signature (mosquitto_broker.h of mosquitto 2.0) is
        // the function pointer type it is transmuted to.
        unsafe {
            Some(Self {
                callback_register: std::mem::transmute::<*mut c_void, CallbackRegister>(register),
                callback_unregister: std::mem::transmute::<*mut c_void, CallbackUnregister>(
                    unregister,
                ),
                log_printf: std::mem::transmute::<*mut c_void, LogPrintf>(log),
                client_id: std::mem::transmute::<*mut c_void, ClientString>(id),
                client_username: std::mem::transmute::<*mut c_void, ClientString>(username),
                client_address: std::mem::transmute::<*mut c_void, ClientString>(address),
                client_protocol_version: std::mem::transmute::<*mut c_void, ClientInt>(version),
                set_username: std::mem::transmute::<*mut c_void, SetUsername>(set_username),
                publish_copy: std::mem::transmute::<*mut c_void, PublishCopy>(publish_copy),
                kick_by_client_id: std::mem::transmute::<*mut c_void, KickByClientId>(kick),
                certificates: match certificates {
                    (Some(get), Some(encode), Some(free)) => Some((
                        std::mem::transmute::<*mut c_void, ClientCertificate>(get),
                        std::mem::transmute::<*mut c_void, I2dX509>(encode),
                        std::mem::transmute::<*mut c_void, X509Free>(free),
                    )),
                    _ => None,
                },
            })
        }
    }
}

/// mosquitto's log, through `mosquitto_log_printf`.
#[derive(Debug)]
struct BrokerLog;

impl Log for BrokerLog {
    fn log(&self, level: Level, line: &str) {
        let Some(broker) = BROKER.get() else { return };
        // A NUL inside the line would cut it; names are escaped, so only a
        // bug could put one there.
        let Ok(line) = CString::new(line.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: "%s" with one NUL-terminated string argument, which lives
        // until the call returns; mosquitto_log_printf copies what it logs.
        unsafe { (broker.log_printf)(level.mosquitto_bits(), c"%s".as_ptr(), line.as_ptr()) };
    }
}

/// The bytes of a NUL-terminated string the broker owns, for the duration
/// of the callback.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
unsafe fn bytes<'a>(text: *const c_char) -> Option<&'a [u8]> {
    if text.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, valid for 'a (the caller's contract).
    Some(unsafe { CStr::from_ptr(text) }.to_bytes())
}

/// Who `client` is: its key, client id and user name (what every
/// decision needs).
///
/// # Safety
/// `client` is NULL or a `struct mosquitto *` the broker handed to the
/// current callback.
unsafe fn identity<'a>(broker: &Broker, client: *mut c_void) -> Client<'a> {
    if client.is_null() {
        return Client::default();
    }
    // SAFETY: `client` is the broker's live client; these accessors only read
    // it and return strings the client owns for at least this callback.
    unsafe {
        Client {
            key: client as usize,
            id: bytes((broker.client_id)(client)),
            username: bytes((broker.client_username)(client)),
            ..Client::default()
        }
    }
}

/// Everything the broker says about `client`, the address and protocol
/// version included (for logins, which log them; ACL checks, on every
/// message, skip the two calls).
///
/// # Safety
/// As [`identity`].
unsafe fn client<'a>(broker: &Broker, client: *mut c_void) -> Client<'a> {
    if client.is_null() {
        return Client::default();
    }
    // SAFETY: as in `identity`.
    unsafe {
        Client {
            address: bytes((broker.client_address)(client)),
            protocol_version: (broker.client_protocol_version)(client),
            ..identity(broker, client)
        }
    }
}

/// The `len` bytes at `payload` (none for NULL or 0).
///
/// # Safety
/// `payload` is NULL or points to `len` readable bytes that stay valid for
/// the callback.
unsafe fn payload<'a>(payload: *const c_void, len: u32) -> &'a [u8] {
    let Ok(len) = usize::try_from(len) else {
        return &[];
    };
    if payload.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-NULL, and the broker's message of `len` bytes, which it
    // keeps for the callback.
    unsafe { std::slice::from_raw_parts(payload.cast::<u8>(), len) }
}

/// The options as UTF-8 pairs; `None` when one is NULL or not UTF-8.
///
/// # Safety
/// `options` is NULL (with `count` 0) or points to `count` valid
/// `mosquitto_opt` entries whose strings are NUL-terminated.
unsafe fn options(options: *const MosquittoOpt, count: c_int) -> Option<Vec<(String, String)>> {
    let count = usize::try_from(count).ok()?;
    if count == 0 {
        return Some(Vec::new());
    }
    if options.is_null() {
        return None;
    }
    // SAFETY: `options` points to `count` entries (the caller's contract).
    let entries = unsafe { std::slice::from_raw_parts(options, count) };
    entries
        .iter()
        .map(|opt| {
            // SAFETY: the entry's strings are NULL or NUL-terminated.
            let (key, value) = unsafe { (bytes(opt.key)?, bytes(opt.value)?) };
            Some((
                String::from_utf8(key.to_vec()).ok()?,
                String::from_utf8(value.to_vec()).ok()?,
            ))
        })
        .collect()
}

/// Runs `f`, answering `fail` when it panics (after logging the panic).
fn guarded(fail: c_int, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        BrokerLog.log(
            Level::Error,
            "mqtt-sec: internal error (panic) in a callback; the request is refused",
        );
        fail
    })
}

/// The plugin API versions mosquitto offers; this library speaks 5 only.
///
/// # Safety
/// `versions` points to `count` integers (mosquitto's contract).
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported to C by its symbol name, not by a Rust path
pub unsafe extern "C" fn mosquitto_plugin_version(count: c_int, versions: *const c_int) -> c_int {
    guarded(-1, || {
        let Ok(count) = usize::try_from(count) else {
            return -1;
        };
        if versions.is_null() || count == 0 {
            return -1;
        }
        // SAFETY: mosquitto passes `count` supported versions.
        let offered = unsafe { std::slice::from_raw_parts(versions, count) };
        if offered.contains(&PLUGIN_API_VERSION) {
            PLUGIN_API_VERSION
        } else {
            -1
        }
    })
}

/// Per-instance data: the plugin and the identifier its callbacks were
/// registered with.
struct Instance {
    plugin: Plugin,
    identifier: *mut c_void,
}

const EVENTS: [(c_int, Callback); 5] = [
    (MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (MOSQ_EVT_ACL_CHECK, on_acl_check),
    (MOSQ_EVT_RELOAD, on_reload),
    (MOSQ_EVT_DISCONNECT, on_disconnect),
    (MOSQ_EVT_TICK, on_tick),
];

/// Largest client certificate taken from the broker.
const MAX_CERTIFICATE_DER: c_int = 64 * 1024;

/// The DER of the certificate the client presented, if any.
///
/// # Safety
/// `client` is NULL or the broker's client of the current callback.
unsafe fn certificate(broker: &Broker, client: *mut c_void) -> Option<Vec<u8>> {
    let (get, encode, free) = broker.certificates?;
    if client.is_null() {
        return None;
    }
    // SAFETY: the broker's accessor; it returns NULL or an X509 whose
    // reference the caller owns and must release with X509_free
    // (SSL_get_peer_certificate, mosquitto_broker.h).
    let x509 = unsafe { get(client) };
    if x509.is_null() {
        return None;
    }
    // SAFETY: with a NULL output pointer i2d_X509 only returns the length.
    let len = unsafe { encode(x509, std::ptr::null_mut()) };
    let der = (len > 0 && len <= MAX_CERTIFICATE_DER)
        .then(|| {
            let mut der = vec![0u8; usize::try_from(len).ok()?];
            let mut out = der.as_mut_ptr();
            // SAFETY: `der` has the `len` bytes i2d_X509 writes; it advances
            // `out`, which is a copy of the buffer's pointer.
            let written = unsafe { encode(x509, &mut out) };
            (written == len).then_some(der)
        })
        .flatten();
    // SAFETY: releases the reference mosquitto_client_certificate gave us.
    unsafe { free(x509) };
    der
}

/// Loads the configuration and registers the callbacks. Any error fails
/// the start, so mosquitto refuses to run without the policy.
///
/// # Safety
/// mosquitto's contract: `identifier` is the plugin's id, `userdata` a
/// valid out-pointer, `options` `option_count` valid entries.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported to C by its symbol name, not by a Rust path
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut c_void,
    userdata: *mut *mut c_void,
    opts: *mut MosquittoOpt,
    option_count: c_int,
) -> c_int {
    guarded(MOSQ_ERR_UNKNOWN, || {
        let Some(broker) = BROKER.get().copied().or_else(Broker::resolve) else {
            return MOSQ_ERR_UNKNOWN;
        };
        let _ = BROKER.set(broker);
        if userdata.is_null() {
            return MOSQ_ERR_INVAL;
        }
        // SAFETY: mosquitto passes its option list for this plugin.
        let Some(options) = (unsafe { options(opts, option_count) }) else {
            BrokerLog.log(
                Level::Error,
                "mqtt-sec: a plugin_opt_ key or value is not UTF-8",
            );
            return MOSQ_ERR_INVAL;
        };
        // The crates' audit events go to mosquitto's log too. A process has
        // one global subscriber; if something set it first, it keeps it.
        let _ =
            tracing::subscriber::set_global_default(crate::audit::AuditForwarder::new(BrokerLog));
        let plugin = match Plugin::start(&options, Box::new(BrokerLog)) {
            Ok(plugin) => plugin,
            Err(e) => {
                BrokerLog.log(Level::Error, &format!("mqtt-sec: not starting: {e}"));
                return MOSQ_ERR_INVAL;
            }
        };
        let instance = Box::into_raw(Box::new(Instance { plugin, identifier }));
        for (event, callback) in EVENTS {
            // SAFETY: registering a callback with the broker's identifier; the
            // instance pointer stays valid until cleanup unregisters it.
            let rc = unsafe {
                (broker.callback_register)(
                    identifier,
                    event,
                    callback,
                    std::ptr::null(),
                    instance.cast(),
                )
            };
            if rc != MOSQ_ERR_SUCCESS {
                BrokerLog.log(
                    Level::Error,
                    &format!("mqtt-sec: registering event {event} failed ({rc})"),
                );
                // SAFETY: unregistering what was registered, then freeing the
                // instance no callback refers to any more.
                unsafe {
                    unregister(&broker, identifier);
                    drop(Box::from_raw(instance));
                }
                return MOSQ_ERR_UNKNOWN;
            }
        }
        // SAFETY: `userdata` is mosquitto's valid out-pointer.
        unsafe { *userdata = instance.cast() };
        MOSQ_ERR_SUCCESS
    })
}

/// # Safety
/// `identifier` is the plugin's id.
unsafe fn unregister(broker: &Broker, identifier: *mut c_void) {
    for (event, callback) in EVENTS {
        // SAFETY: unregistering is a no-op for a callback that is not registered.
        unsafe { (broker.callback_unregister)(identifier, event, callback, std::ptr::null()) };
    }
}

/// Unregisters the callbacks and frees the plugin.
///
/// # Safety
/// `userdata` is what `mosquitto_plugin_init` stored, or NULL.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // exported to C by its symbol name, not by a Rust path
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _opts: *mut MosquittoOpt,
    _option_count: c_int,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        if userdata.is_null() {
            return MOSQ_ERR_SUCCESS;
        }
        let instance = userdata.cast::<Instance>();
        if let Some(broker) = BROKER.get() {
            // SAFETY: the instance was made by init and is still alive.
            unsafe { unregister(broker, (*instance).identifier) };
        }
        // SAFETY: made by Box::into_raw in init; no callback refers to it now.
        drop(unsafe { Box::from_raw(instance) });
        MOSQ_ERR_SUCCESS
    })
}

/// What every callback needs, or `None` (then the callback fails closed):
/// the broker functions, the instance, and the event struct, when `event`
/// is the one the callback was registered for and no pointer is NULL.
///
/// # Safety
/// `userdata` is NULL or the instance init registered (it outlives every
/// callback); `data` is NULL or the broker's event struct of type `T` for
/// this call, valid until it returns.
unsafe fn unpack<'a, T>(
    event: c_int,
    expected: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> Option<(&'static Broker, &'a Instance, &'a T)> {
    if event != expected {
        return None;
    }
    let broker = BROKER.get()?;
    // SAFETY: the caller's contract: NULL or valid for 'a.
    let (instance, evt) = unsafe {
        (
            userdata.cast::<Instance>().as_ref()?,
            data.cast::<T>().as_ref()?,
        )
    };
    Some((broker, instance, evt))
}

unsafe extern "C" fn on_basic_auth(
    event: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_AUTH, || {
        // SAFETY: registered for MOSQ_EVT_BASIC_AUTH with our instance; the
        // broker passes its mosquitto_evt_basic_auth.
        let Some((broker, instance, evt)) =
            (unsafe { unpack::<EvtBasicAuth>(event, MOSQ_EVT_BASIC_AUTH, data, userdata) })
        else {
            return MOSQ_ERR_AUTH;
        };
        // SAFETY: the event's client is the broker's, valid for this callback.
        let der = unsafe { certificate(broker, evt.client) };
        // SAFETY: the event's strings and client are the broker's, valid for
        // this callback.
        let login = unsafe {
            Login {
                client: client(broker, evt.client),
                username: bytes(evt.username),
                password: bytes(evt.password),
                certificate: der.as_deref(),
            }
        };
        match instance.plugin.authenticate(&login) {
            AuthVerdict::Allow { username: None } => MOSQ_ERR_SUCCESS,
            AuthVerdict::Allow {
                username: Some(username),
            } => {
                // The safe core refuses names with a NUL; this only
                // keeps the conversion total.
                let Ok(username) = CString::new(username) else {
                    return MOSQ_ERR_AUTH;
                };
                // SAFETY: the broker's client of this callback; mosquitto
                // copies the string (mosquitto__strdup) and frees the old one.
                match unsafe { (broker.set_username)(evt.client, username.as_ptr()) } {
                    MOSQ_ERR_SUCCESS => MOSQ_ERR_SUCCESS,
                    rc => {
                        BrokerLog.log(
                            Level::Error,
                            &format!("mqtt-sec: setting the user name failed ({rc}); refused"),
                        );
                        MOSQ_ERR_AUTH
                    }
                }
            }
            AuthVerdict::Deny => MOSQ_ERR_AUTH,
        }
    })
}

unsafe extern "C" fn on_acl_check(event: c_int, data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(MOSQ_ERR_ACL_DENIED, || {
        // SAFETY: registered for MOSQ_EVT_ACL_CHECK with our instance; the
        // broker passes its mosquitto_evt_acl_check.
        let Some((broker, instance, evt)) =
            (unsafe { unpack::<EvtAclCheck>(event, MOSQ_EVT_ACL_CHECK, data, userdata) })
        else {
            return MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: the event's topic, client and payload (of `payloadlen`
        // bytes, or NULL) are the broker's, valid for this callback; the
        // protocol accessor only reads the non-NULL client.
        let check = unsafe {
            let mut client = identity(broker, evt.client);
            // The rate limit and the signature firewall tell a client's own
            // publish from the broker re-checking a retained message's
            // publisher (`check_retain_source`) with a blank context of
            // protocol 0.
            if evt.access == crate::event::access::WRITE && !evt.client.is_null() {
                client.protocol_version = (broker.client_protocol_version)(evt.client);
            }
            AclCheck {
                client,
                topic: bytes(evt.topic),
                access: evt.access,
                qos: evt.qos,
                retain: evt.retain,
                payload_len: evt.payloadlen,
                payload: if evt.access == crate::event::access::WRITE {
                    payload(evt.payload, evt.payloadlen)
                } else {
                    &[]
                },
            }
        };
        match instance.plugin.authorize(&check) {
            AclVerdict::Allow => MOSQ_ERR_SUCCESS,
            AclVerdict::Deny => MOSQ_ERR_ACL_DENIED,
        }
    })
}

unsafe extern "C" fn on_disconnect(
    event: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        // SAFETY: registered for MOSQ_EVT_DISCONNECT with our instance; the
        // broker passes its mosquitto_evt_disconnect.
        let Some((broker, instance, evt)) =
            (unsafe { unpack::<EvtDisconnect>(event, MOSQ_EVT_DISCONNECT, data, userdata) })
        else {
            return MOSQ_ERR_SUCCESS;
        };
        // SAFETY: the event's client is the broker's, valid for this callback.
        let who = unsafe { identity(broker, evt.client) };
        instance.plugin.disconnected(&who);
        MOSQ_ERR_SUCCESS
    })
}

/// mosquitto 2.0 stops calling reload callbacks at the first that does
/// not defer (`security__init_single`), so this one always defers: the
/// other plugins reload too. A failed reload keeps the previous state.
unsafe extern "C" fn on_reload(event: c_int, data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(MOSQ_ERR_PLUGIN_DEFER, || {
        // SAFETY: registered for MOSQ_EVT_RELOAD with our instance; the
        // broker passes its mosquitto_evt_reload.
        let Some((_, instance, evt)) =
            (unsafe { unpack::<EvtReload>(event, MOSQ_EVT_RELOAD, data, userdata) })
        else {
            return MOSQ_ERR_PLUGIN_DEFER;
        };
        // SAFETY: the reload's option list, as init's (mosquitto 2.0 passes none).
        let options = unsafe { options(evt.options, evt.option_count) };
        let _ = instance.plugin.reload(&options.unwrap_or_default());
        MOSQ_ERR_PLUGIN_DEFER
    })
}

/// Every pass of the broker's loop (mosquitto 2.0 hands over a zeroed
/// `mosquitto_evt_tick`, so its fields are not read): does what the plugin
/// has due, on the broker's own thread.
unsafe extern "C" fn on_tick(event: c_int, _data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(MOSQ_ERR_SUCCESS, || {
        let Some(broker) = BROKER.get().filter(|_| event == MOSQ_EVT_TICK) else {
            return MOSQ_ERR_SUCCESS;
        };
        // SAFETY: registered with our instance, valid until cleanup
        // unregisters this callback.
        let Some(instance) = (unsafe { userdata.cast::<Instance>().as_ref() }) else {
            return MOSQ_ERR_SUCCESS;
        };
        // The plugin holds no lock now: a kick runs our disconnect callback
        // before it returns.
        let due = instance.plugin.tick();
        for client_id in due.disconnect {
            // A client id from the broker has no NUL; one that had would be
            // skipped, never turned into NULL (which kicks everyone).
            let Ok(client_id) = CString::new(client_id) else {
                continue;
            };
            // SAFETY: the broker's function, called from its loop, with a
            // NUL-terminated client id; without the will (the client's
            // authority has ended).
            let rc = unsafe { (broker.kick_by_client_id)(client_id.as_ptr(), false) };
            if rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NOT_FOUND {
                BrokerLog.log(
                    Level::Warning,
                    &format!(
                        "mqtt-sec: disconnecting client {} failed ({rc})",
                        crate::log::name(client_id.as_bytes())
                    ),
                );
            }
        }
        for publication in due.publish {
            let (Ok(topic), Ok(len)) = (
                CString::new(publication.topic),
                c_int::try_from(publication.payload.len()),
            ) else {
                continue;
            };
            // SAFETY: the broker's function, called from its loop: a NULL
            // client id publishes to every subscriber; the topic is
            // NUL-terminated; the payload is `len` bytes, copied by the
            // broker before it returns; no properties.
            let rc = unsafe {
                (broker.publish_copy)(
                    std::ptr::null(),
                    topic.as_ptr(),
                    len,
                    publication.payload.as_ptr().cast(),
                    0,
                    true,
                    std::ptr::null_mut(),
                )
            };
            if rc != MOSQ_ERR_SUCCESS {
                BrokerLog.log(
                    Level::Warning,
                    &format!("mqtt-sec: publishing {topic:?} failed ({rc})"),
                );
            }
        }
        MOSQ_ERR_SUCCESS
    })
}

#[cfg(test)]
mod layout {
    //! The structs above against the installed headers: a C program
    //! compiled with them prints `sizeof` and `offsetof` of every struct and
    //! field the plugin reads, and the Rust side must agree.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::mem::{offset_of, size_of};
    use std::process::Command;

    use super::{EvtAclCheck, EvtBasicAuth, EvtDisconnect, EvtReload, MosquittoOpt};

    const PROGRAM: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#define S(t) printf("sizeof %s %zu\n", #t, sizeof(struct t))
#define O(t, f) printf("offsetof %s.%s %zu\n", #t, #f, offsetof(struct t, f))
int main(void) {
    S(mosquitto_opt); O(mosquitto_opt, key); O(mosquitto_opt, value);
    S(mosquitto_evt_basic_auth); O(mosquitto_evt_basic_auth, client);
    O(mosquitto_evt_basic_auth, username); O(mosquitto_evt_basic_auth, password);
    S(mosquitto_evt_acl_check); O(mosquitto_evt_acl_check, client);
    O(mosquitto_evt_acl_check, topic); O(mosquitto_evt_acl_check, access);
    O(mosquitto_evt_acl_check, payload); O(mosquitto_evt_acl_check, payloadlen);
    O(mosquitto_evt_acl_check, qos); O(mosquitto_evt_acl_check, retain);
    S(mosquitto_evt_reload); O(mosquitto_evt_reload, options);
    O(mosquitto_evt_reload, option_count);
    S(mosquitto_evt_disconnect); O(mosquitto_evt_disconnect, client);
    O(mosquitto_evt_disconnect, reason);
    printf("const MOSQ_EVT_RELOAD %d\n", MOSQ_EVT_RELOAD);
    printf("const MOSQ_EVT_ACL_CHECK %d\n", MOSQ_EVT_ACL_CHECK);
    printf("const MOSQ_EVT_BASIC_AUTH %d\n", MOSQ_EVT_BASIC_AUTH);
    printf("const MOSQ_EVT_DISCONNECT %d\n", MOSQ_EVT_DISCONNECT);
    printf("const MOSQ_EVT_TICK %d\n", MOSQ_EVT_TICK);
    printf("const MOSQ_ERR_SUCCESS %d\n", MOSQ_ERR_SUCCESS);
    printf("const MOSQ_ERR_INVAL %d\n", MOSQ_ERR_INVAL);
    printf("const MOSQ_ERR_NOT_FOUND %d\n", MOSQ_ERR_NOT_FOUND);
    printf("const MOSQ_ERR_AUTH %d\n", MOSQ_ERR_AUTH);
    printf("const MOSQ_ERR_ACL_DENIED %d\n", MOSQ_ERR_ACL_DENIED);
    printf("const MOSQ_ERR_UNKNOWN %d\n", MOSQ_ERR_UNKNOWN);
    printf("const MOSQ_ERR_PLUGIN_DEFER %d\n", MOSQ_ERR_PLUGIN_DEFER);
    printf("const MOSQ_ACL_READ %d\n", MOSQ_ACL_READ);
    printf("const MOSQ_ACL_WRITE %d\n", MOSQ_ACL_WRITE);
    printf("const MOSQ_ACL_SUBSCRIBE %d\n", MOSQ_ACL_SUBSCRIBE);
    printf("const MOSQ_ACL_UNSUBSCRIBE %d\n", MOSQ_ACL_UNSUBSCRIBE);
    printf("const MOSQ_LOG_INFO %d\n", MOSQ_LOG_INFO);
    printf("const MOSQ_LOG_NOTICE %d\n", MOSQ_LOG_NOTICE);
    printf("const MOSQ_LOG_WARNING %d\n", MOSQ_LOG_WARNING);
    printf("const MOSQ_LOG_ERR %d\n", MOSQ_LOG_ERR);
    printf("const MOSQ_LOG_DEBUG %d\n", MOSQ_LOG_DEBUG);
    return 0;
}
"#;

    fn rust_side() -> Vec<String> {
        use crate::event::access;
        use crate::log::Level;
        let lines = [
            ("sizeof mosquitto_opt", size_of::<MosquittoOpt>()),
            ("offsetof mosquitto_opt.key", offset_of!(MosquittoOpt, key)),
            (
                "offsetof mosquitto_opt.value",
                offset_of!(MosquittoOpt, value),
            ),
            ("sizeof mosquitto_evt_basic_auth", size_of::<EvtBasicAuth>()),
            (
                "offsetof mosquitto_evt_basic_auth.client",
                offset_of!(EvtBasicAuth, client),
            ),
            (
                "offsetof mosquitto_evt_basic_auth.username",
                offset_of!(EvtBasicAuth, username),
            ),
            (
                "offsetof mosquitto_evt_basic_auth.password",
                offset_of!(EvtBasicAuth, password),
            ),
            ("sizeof mosquitto_evt_acl_check", size_of::<EvtAclCheck>()),
            (
                "offsetof mosquitto_evt_acl_check.client",
                offset_of!(EvtAclCheck, client),
            ),
            (
                "offsetof mosquitto_evt_acl_check.topic",
                offset_of!(EvtAclCheck, topic),
            ),
            (
                "offsetof mosquitto_evt_acl_check.access",
                offset_of!(EvtAclCheck, access),
            ),
            (
                "offsetof mosquitto_evt_acl_check.payload",
                offset_of!(EvtAclCheck, payload),
            ),
            (
                "offsetof mosquitto_evt_acl_check.payloadlen",
                offset_of!(EvtAclCheck, payloadlen),
            ),
            (
                "offsetof mosquitto_evt_acl_check.qos",
                offset_of!(EvtAclCheck, qos),
            ),
            (
                "offsetof mosquitto_evt_acl_check.retain",
                offset_of!(EvtAclCheck, retain),
            ),
            ("sizeof mosquitto_evt_reload", size_of::<EvtReload>()),
            (
                "offsetof mosquitto_evt_reload.options",
                offset_of!(EvtReload, options),
            ),
            (
                "offsetof mosquitto_evt_reload.option_count",
                offset_of!(EvtReload, option_count),
            ),
            (
                "sizeof mosquitto_evt_disconnect",
                size_of::<EvtDisconnect>(),
            ),
            (
                "offsetof mosquitto_evt_disconnect.client",
                offset_of!(EvtDisconnect, client),
            ),
            (
                "offsetof mosquitto_evt_disconnect.reason",
                offset_of!(EvtDisconnect, reason),
            ),
        ];
        let constants = [
            ("MOSQ_EVT_RELOAD", super::MOSQ_EVT_RELOAD),
            ("MOSQ_EVT_ACL_CHECK", super::MOSQ_EVT_ACL_CHECK),
            ("MOSQ_EVT_BASIC_AUTH", super::MOSQ_EVT_BASIC_AUTH),
            ("MOSQ_EVT_DISCONNECT", super::MOSQ_EVT_DISCONNECT),
            ("MOSQ_EVT_TICK", super::MOSQ_EVT_TICK),
            ("MOSQ_ERR_SUCCESS", super::MOSQ_ERR_SUCCESS),
            ("MOSQ_ERR_INVAL", super::MOSQ_ERR_INVAL),
            ("MOSQ_ERR_NOT_FOUND", super::MOSQ_ERR_NOT_FOUND),
            ("MOSQ_ERR_AUTH", super::MOSQ_ERR_AUTH),
            ("MOSQ_ERR_ACL_DENIED", super::MOSQ_ERR_ACL_DENIED),
            ("MOSQ_ERR_UNKNOWN", super::MOSQ_ERR_UNKNOWN),
            ("MOSQ_ERR_PLUGIN_DEFER", super::MOSQ_ERR_PLUGIN_DEFER),
            ("MOSQ_ACL_READ", access::READ),
            ("MOSQ_ACL_WRITE", access::WRITE),
            ("MOSQ_ACL_SUBSCRIBE", access::SUBSCRIBE),
            ("MOSQ_ACL_UNSUBSCRIBE", access::UNSUBSCRIBE),
            ("MOSQ_LOG_INFO", Level::Info.mosquitto_bits()),
            ("MOSQ_LOG_NOTICE", Level::Notice.mosquitto_bits()),
            ("MOSQ_LOG_WARNING", Level::Warning.mosquitto_bits()),
            ("MOSQ_LOG_ERR", Level::Error.mosquitto_bits()),
            ("MOSQ_LOG_DEBUG", Level::Debug.mosquitto_bits()),
        ];
        lines
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .chain(
                constants
                    .iter()
                    .map(|(name, value)| format!("const {name} {value}")),
            )
            .collect()
    }

    #[test]
    fn structs_and_constants_match_the_installed_headers() {
        if !std::path::Path::new("/usr/include/mosquitto_broker.h").exists()
            && !mqtt_sec_testkit::in_ci()
        {
            eprintln!("skipped: mosquitto-dev is not installed (apt install mosquitto-dev)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("layout.c");
        let binary = dir.path().join("layout");
        std::fs::write(&source, PROGRAM).unwrap();
        let compiled = Command::new("cc")
            .arg(&source)
            .arg("-o")
            .arg(&binary)
            .output()
            .unwrap();
        assert!(
            compiled.status.success(),
            "{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
        let output = Command::new(&binary).output().unwrap();
        let c_side: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(c_side, rust_side());
    }
}

#[cfg(test)]
mod fail_closed {
    //! The exported functions and callbacks outside a broker, or with what a
    //! broker never sends: every answer is a refusal, never a crash.

    use std::ptr::null_mut;

    use super::*;

    #[test]
    fn only_plugin_api_version_5_is_spoken() {
        let offers: [(&[c_int], c_int); 4] = [
            (&[5, 4, 3, 2], 5),
            (&[2, 5], 5),
            (&[4, 3, 2], -1),
            (&[6], -1),
        ];
        for (offered, expected) in offers {
            let count = c_int::try_from(offered.len()).unwrap();
            // SAFETY: `offered` holds `count` integers.
            let chosen = unsafe { mosquitto_plugin_version(count, offered.as_ptr()) };
            assert_eq!(chosen, expected, "{offered:?}");
        }
        // SAFETY: NULL with a count, and a negative count, are refused before any read.
        unsafe {
            assert_eq!(mosquitto_plugin_version(3, std::ptr::null()), -1);
            assert_eq!(mosquitto_plugin_version(-1, [5].as_ptr()), -1);
        }
    }

    #[test]
    fn outside_a_broker_the_plugin_does_not_start() {
        // The test binary exports no mosquitto functions: init fails, so a
        // broker missing one would refuse to run rather than run unguarded.
        let mut userdata = null_mut();
        // SAFETY: a valid out-pointer and no options.
        let rc = unsafe { mosquitto_plugin_init(null_mut(), &mut userdata, null_mut(), 0) };
        assert_eq!(rc, MOSQ_ERR_UNKNOWN);
        assert!(userdata.is_null());
        // SAFETY: cleanup of nothing is a no-op.
        let rc = unsafe { mosquitto_plugin_cleanup(null_mut(), null_mut(), 0) };
        assert_eq!(rc, MOSQ_ERR_SUCCESS);
    }

    #[test]
    fn callbacks_refuse_without_a_broker_an_instance_or_the_right_event() {
        // SAFETY: NULL pointers and wrong events are what unpack refuses.
        unsafe {
            for event in [MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_ACL_CHECK, 99] {
                assert_eq!(on_basic_auth(event, null_mut(), null_mut()), MOSQ_ERR_AUTH);
                assert_eq!(
                    on_acl_check(event, null_mut(), null_mut()),
                    MOSQ_ERR_ACL_DENIED
                );
            }
            assert_eq!(
                on_reload(MOSQ_EVT_RELOAD, null_mut(), null_mut()),
                MOSQ_ERR_PLUGIN_DEFER
            );
            assert_eq!(
                on_disconnect(MOSQ_EVT_DISCONNECT, null_mut(), null_mut()),
                MOSQ_ERR_SUCCESS
            );
            // A tick without a broker or an instance publishes nothing.
            assert_eq!(
                on_tick(MOSQ_EVT_TICK, null_mut(), null_mut()),
                MOSQ_ERR_SUCCESS
            );
        }
    }

    #[test]
    fn a_panic_in_a_callback_is_a_refusal() {
        assert_eq!(guarded(MOSQ_ERR_AUTH, || panic!("a bug")), MOSQ_ERR_AUTH);
        assert_eq!(
            guarded(MOSQ_ERR_ACL_DENIED, || MOSQ_ERR_SUCCESS),
            MOSQ_ERR_SUCCESS
        );
    }

    #[test]
    fn options_must_be_text() {
        let key = c"config";
        let bad = b"\xff\0";
        let good = [MosquittoOpt {
            key: key.as_ptr().cast_mut(),
            value: key.as_ptr().cast_mut(),
        }];
        let broken = [MosquittoOpt {
            key: key.as_ptr().cast_mut(),
            value: bad.as_ptr().cast::<c_char>().cast_mut(),
        }];
        let missing = [MosquittoOpt {
            key: key.as_ptr().cast_mut(),
            value: null_mut(),
        }];
        // SAFETY: each list holds one entry with NUL-terminated strings or NULL.
        unsafe {
            assert_eq!(
                options(good.as_ptr(), 1),
                Some(vec![("config".to_owned(), "config".to_owned())])
            );
            assert_eq!(options(broken.as_ptr(), 1), None);
            assert_eq!(options(missing.as_ptr(), 1), None);
            assert_eq!(options(std::ptr::null(), 1), None);
            assert_eq!(options(std::ptr::null(), 0), Some(Vec::new()));
            assert_eq!(options(good.as_ptr(), -1), None);
        }
    }
}
