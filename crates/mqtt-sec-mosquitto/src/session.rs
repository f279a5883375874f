//! What logins established, per connection, and when each must end.
//!
//! A session holds what a connection may do beyond the configured ACL and
//! until when: a token login's grants and expiry, a client certificate's
//! expiry, or a revocation by a reload. A credential is what a connection
//! proved at login (a password-file entry, a token's key), kept to be
//! checked against each reloaded configuration; it is never consulted on
//! an access, so deployments without sessions pay nothing per message.
//!
//! mosquitto 2.0 disconnects a client only by client id
//! (`mosquitto_kick_client_by_clientid`), and a client id moves to a new
//! connection when a client logs in again (the broker takes the old one
//! over). So each client id remembers the connection of its latest login,
//! and an ended session is disconnected only while it is that one: an old
//! connection's end must never disconnect the fresh login that replaced
//! it. (The old connection's accesses are refused from its end on in any
//! case.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use mqtt_sec_auth::jwt::{TokenAcl, TrustedKey};
use mqtt_sec_auth::password::PasswordHash;

/// Why a connection's authority ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its token's `exp`.
    TokenExpiry,
    /// Its client certificate's `notAfter`.
    CertificateExpiry,
    /// A reload withdrew the credential it logged in with.
    Revoked,
    /// The shared revocation list revokes its token, the token's key or
    /// its client certificate.
    RevokedInList,
}

impl Ending {
    /// Why, for a log line or a refusal: "its token has expired".
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::TokenExpiry => "its token has expired",
            Self::CertificateExpiry => "its client certificate has expired",
            Self::Revoked => "a reload withdrew the credential it logged in with",
            Self::RevokedInList => {
                "the shared revocation list revokes its token, the token's key or its certificate"
            }
        }
    }
}

/// What a login established for one connection, until it ends.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client id at login: a connection is only ever looked up with it.
    pub(crate) client_id: Vec<u8>,
    /// After it the connection is granted nothing, and the broker's next
    /// tick disconnects it.
    pub(crate) ends_at: SystemTime,
    pub(crate) ending: Ending,
    /// An issuer's token with the superuser claim.
    pub(crate) superuser: bool,
    /// The token's `acl` claim.
    pub(crate) acl: Option<TokenAcl>,
}

impl Session {
    /// Ends the session at `at` for `ending`, if that is sooner.
    pub(crate) fn end_by(&mut self, at: SystemTime, ending: Ending) {
        if at < self.ends_at {
            self.ends_at = at;
            self.ending = ending;
        }
    }
}

/// One credential a login showed that a revocation list may revoke: its
/// kind and value, as `mqtt_sec_core::revocation::Credential` takes them.
pub(crate) type Revocable = (mqtt_sec_core::revocation::Kind, Vec<u8>);

/// What a connection proved at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// A password-file user, and the entry the password matched.
    Password {
        username: String,
        hash: PasswordHash,
    },
    /// A token, and the key that verified it (for a device key, the
    /// identity it is registered for).
    Token {
        key: Arc<TrustedKey>,
        device: Option<String>,
        /// The token's identity: the user name the broker holds.
        identity: String,
    },
}

impl Credential {
    /// The user name the login set (`None`: the CONNECT's stayed).
    pub(crate) fn verified_name(&self) -> Option<&str> {
        match self {
            Self::Password { .. } => None,
            Self::Token { identity, .. } => Some(identity),
        }
    }
}

/// The sessions and credentials of the connected clients.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_connection: HashMap<usize, Session>,
    credentials: HashMap<usize, (Vec<u8>, Credential)>,
    /// What of each connection's login a revocation list can revoke
    /// (its token's kid and jti, its certificate's serial), with its
    /// client id.
    revocable: HashMap<usize, (Vec<u8>, Vec<Revocable>)>,
    /// For each client id: the connection of its latest login.
    latest: HashMap<Vec<u8>, usize>,
    /// When each session ends, soonest first; entries of sessions gone or
    /// replaced are skipped when they come up.
    endings: BinaryHeap<Reverse<(SystemTime, usize)>>,
}

impl Sessions {
    /// How many sessions there are. The plugin reads it only to skip the
    /// session lock when there are none: a wrong count costs a lock, never a
    /// decision (an equivalent mutant for cargo-mutants).
    pub(crate) fn len(&self) -> usize {
        self.by_connection.len()
    }

    pub(crate) fn get(&self, connection: usize) -> Option<&Session> {
        self.by_connection.get(&connection)
    }

    /// A login on `connection` as `client_id` succeeded (by any method):
    /// from now on the client id is this connection's.
    pub(crate) fn logged_in(&mut self, connection: usize, client_id: &[u8]) {
        match self.latest.get_mut(client_id) {
            Some(latest) => *latest = connection,
            None => {
                self.latest.insert(client_id.to_vec(), connection);
            }
        }
    }

    /// Whether `connection` holds the latest login of `client_id`.
    pub(crate) fn is_latest(&self, connection: usize, client_id: &[u8]) -> bool {
        self.latest.get(client_id) == Some(&connection)
    }

    /// What the login on `connection` proved.
    pub(crate) fn credential(&self, connection: usize) -> Option<&Credential> {
        self.credentials
            .get(&connection)
            .map(|(_, credential)| credential)
    }

    /// The login on `connection` set up `session`.
    pub(crate) fn insert(&mut self, connection: usize, session: Session) {
        self.endings.push(Reverse((session.ends_at, connection)));
        self.by_connection.insert(connection, session);
    }

    /// The login on `connection` as `client_id` proved `credential`.
    pub(crate) fn remember(&mut self, connection: usize, client_id: &[u8], credential: Credential) {
        self.credentials
            .insert(connection, (client_id.to_vec(), credential));
    }

    /// The login on `connection` as `client_id` showed `revocable`.
    pub(crate) fn remember_revocable(
        &mut self,
        connection: usize,
        client_id: &[u8],
        revocable: Vec<Revocable>,
    ) {
        if !revocable.is_empty() {
            self.revocable
                .insert(connection, (client_id.to_vec(), revocable));
        }
    }

    /// Every connection's revocable credentials, to ask a revocation list.
    pub(crate) fn revocable(&self) -> Vec<(usize, Vec<Revocable>)> {
        self.revocable
            .iter()
            .map(|(connection, (_, revocable))| (*connection, revocable.clone()))
            .collect()
    }

    /// Ends `connection`'s session at `now` because the revocation list
    /// revokes what it showed; its client id, once.
    pub(crate) fn revoke_listed(&mut self, connection: usize, now: SystemTime) -> Option<Vec<u8>> {
        let (client_id, _) = self.revocable.remove(&connection)?;
        self.credentials.remove(&connection);
        self.end(connection, client_id.clone(), now, Ending::RevokedInList);
        Some(client_id)
    }

    /// The connections whose credential `still_valid` no longer accepts.
    pub(crate) fn withdrawn(&self, still_valid: impl Fn(&Credential) -> bool) -> Vec<usize> {
        self.credentials
            .iter()
            .filter(|(_, (_, credential))| !still_valid(credential))
            .map(|(connection, _)| *connection)
            .collect()
    }

    /// Ends `connection`'s session at `now` (a reload withdrew its
    /// credential); one is set up if it had none. Returns its client id.
    pub(crate) fn revoke(&mut self, connection: usize, now: SystemTime) -> Option<Vec<u8>> {
        let (client_id, _) = self.credentials.remove(&connection)?;
        self.end(connection, client_id.clone(), now, Ending::Revoked);
        Some(client_id)
    }

    /// Ends `connection`'s session at `now` for `ending`; one is set up if
    /// it had none.
    fn end(&mut self, connection: usize, client_id: Vec<u8>, now: SystemTime, ending: Ending) {
        match self.by_connection.get_mut(&connection) {
            Some(session) => {
                session.end_by(now, ending);
                self.endings.push(Reverse((session.ends_at, connection)));
            }
            None => self.insert(
                connection,
                Session {
                    client_id,
                    ends_at: now,
                    ending,
                    superuser: false,
                    acl: None,
                },
            ),
        }
    }

    /// The connection ended (or logs in again): its session and credential
    /// go; its client id is forgotten when it was this connection's.
    pub(crate) fn forget(&mut self, connection: usize, client_id: Option<&[u8]>) {
        let removed = self.by_connection.remove(&connection);
        let remembered = self.credentials.remove(&connection);
        self.revocable.remove(&connection);
        let client_id = client_id
            .or(removed.as_ref().map(|s| s.client_id.as_slice()))
            .or(remembered.as_ref().map(|(id, _)| id.as_slice()));
        if let Some(client_id) = client_id
            && self.latest.get(client_id) == Some(&connection)
        {
            self.latest.remove(client_id);
        }
        // A heap of only stale entries (every session gone) is dropped
        // whole, so it cannot grow with connections that came and went.
        if self.by_connection.is_empty() {
            self.endings.clear();
        }
    }

    /// The client ids to disconnect at `now`, and why: those whose latest
    /// login's session has ended. Each is returned once.
    pub(crate) fn ended(&mut self, now: SystemTime) -> Vec<(Vec<u8>, Ending)> {
        let mut due: Vec<(Vec<u8>, Ending)> = Vec::new();
        while let Some(Reverse((at, connection))) = self.endings.peek().copied() {
            if at > now {
                break;
            }
            self.endings.pop();
            let Some(session) = self.by_connection.get(&connection) else {
                continue;
            };
            // A session whose entry this is not (the connection logged in
            // again, or its end moved) has its own entry.
            if session.ends_at != at {
                continue;
            }
            if self.latest.get(&session.client_id) == Some(&connection)
                && !due.iter().any(|(id, _)| *id == session.client_id)
            {
                due.push((session.client_id.clone(), session.ending));
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    fn session(client_id: &str, expires: u64) -> Session {
        Session {
            client_id: client_id.as_bytes().to_vec(),
            ends_at: at(expires),
            ending: Ending::TokenExpiry,
            superuser: false,
            acl: None,
        }
    }

    /// A token login: the client id becomes the connection's, with a session.
    fn token_login(sessions: &mut Sessions, connection: usize, client_id: &str, expires: u64) {
        sessions.logged_in(connection, client_id.as_bytes());
        sessions.insert(connection, session(client_id, expires));
    }

    fn expired(sessions: &mut Sessions, now: SystemTime) -> Vec<Vec<u8>> {
        sessions.ended(now).into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn an_expired_session_is_due_once_at_its_expiry() {
        let mut sessions = Sessions::default();
        token_login(&mut sessions, 1, "dev-1", 5);
        token_login(&mut sessions, 2, "dev-2", 9);
        assert!(expired(&mut sessions, at(4)).is_empty());
        assert_eq!(expired(&mut sessions, at(5)), [b"dev-1".to_vec()]);
        assert!(expired(&mut sessions, at(6)).is_empty());
        assert_eq!(expired(&mut sessions, at(100)), [b"dev-2".to_vec()]);
    }

    #[test]
    fn a_fresh_login_on_the_client_id_is_never_disconnected_by_the_old_expiry() {
        let mut sessions = Sessions::default();
        token_login(&mut sessions, 1, "dev-1", 5);
        // dev-1 logs in again on connection 2 with a password.
        sessions.logged_in(2, b"dev-1");
        assert!(expired(&mut sessions, at(5)).is_empty());
        // ...or with a fresh token, expiring later.
        token_login(&mut sessions, 3, "dev-2", 5);
        token_login(&mut sessions, 4, "dev-2", 60);
        assert!(expired(&mut sessions, at(5)).is_empty());
        assert_eq!(expired(&mut sessions, at(60)), [b"dev-2".to_vec()]);
    }

    #[test]
    fn a_connection_that_ended_is_not_disconnected() {
        let mut sessions = Sessions::default();
        token_login(&mut sessions, 1, "dev-1", 5);
        token_login(&mut sessions, 2, "dev-2", 5);
        sessions.forget(1, Some(b"dev-1"));
        assert_eq!(expired(&mut sessions, at(5)), [b"dev-2".to_vec()]);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn a_new_token_on_the_same_connection_moves_its_expiry() {
        let mut sessions = Sessions::default();
        token_login(&mut sessions, 1, "dev-1", 5);
        sessions.forget(1, Some(b"dev-1"));
        token_login(&mut sessions, 1, "dev-1", 50);
        assert!(expired(&mut sessions, at(5)).is_empty());
        assert_eq!(expired(&mut sessions, at(50)), [b"dev-1".to_vec()]);
    }

    #[test]
    fn forgetting_the_older_connection_keeps_the_newer_ones_client_id() {
        let mut sessions = Sessions::default();
        token_login(&mut sessions, 1, "dev-1", 5);
        token_login(&mut sessions, 2, "dev-1", 9);
        // The broker ends the taken-over connection 1.
        sessions.forget(1, Some(b"dev-1"));
        assert_eq!(expired(&mut sessions, at(9)), [b"dev-1".to_vec()]);
        sessions.forget(2, Some(b"dev-1"));
        assert!(sessions.latest.is_empty() && sessions.endings.is_empty());
    }

    fn password(username: &str) -> Credential {
        let hash = mqtt_sec_auth::password::PasswordHash::parse(
            "$7$101$MDEyMzQ1Njc4OWFi$MMIY/vxnTY80Onln5v1+ej+KtUNRbxc4eBsabG158Zctog4BAIjC+r7N0C4QUD4RWtp838S4KtgMCVtZ3BGsSw==",
        )
        .unwrap();
        Credential::Password {
            username: username.into(),
            hash,
        }
    }

    #[test]
    fn a_withdrawn_credential_ends_the_session_now_and_once() {
        let mut sessions = Sessions::default();
        sessions.logged_in(1, b"dev-1");
        sessions.remember(1, b"dev-1", password("alice"));
        sessions.logged_in(2, b"dev-2");
        sessions.remember(2, b"dev-2", password("bob"));
        token_login(&mut sessions, 3, "dev-3", 60);
        sessions.remember(3, b"dev-3", password("carol"));
        let withdrawn = sessions.withdrawn(|c| *c != password("alice") && *c != password("carol"));
        let mut withdrawn = withdrawn;
        withdrawn.sort_unstable();
        assert_eq!(withdrawn, [1, 3]);
        assert_eq!(sessions.revoke(1, at(10)), Some(b"dev-1".to_vec()));
        assert_eq!(sessions.revoke(3, at(10)), Some(b"dev-3".to_vec()));
        assert_eq!(sessions.revoke(3, at(10)), None, "once");
        assert_eq!(
            sessions.get(1).map(|s| (s.ends_at, s.ending)),
            Some((at(10), Ending::Revoked))
        );
        assert_eq!(
            sessions.ended(at(10)),
            [
                (b"dev-1".to_vec(), Ending::Revoked),
                (b"dev-3".to_vec(), Ending::Revoked)
            ]
        );
        assert!(
            sessions.ended(at(60)).is_empty(),
            "the token's own end is past"
        );
        assert!(sessions.get(2).is_none(), "bob's connection is untouched");
    }

    #[test]
    fn a_session_ends_at_the_sooner_of_its_ends() {
        let mut early = session("dev-1", 50);
        early.end_by(at(20), Ending::CertificateExpiry);
        assert_eq!(
            (early.ends_at, early.ending),
            (at(20), Ending::CertificateExpiry)
        );
        early.end_by(at(30), Ending::Revoked);
        assert_eq!(
            (early.ends_at, early.ending),
            (at(20), Ending::CertificateExpiry)
        );
        // A tie keeps the first reason.
        early.end_by(at(20), Ending::Revoked);
        assert_eq!(early.ending, Ending::CertificateExpiry);
    }

    #[test]
    fn a_revoked_connection_taken_over_is_not_disconnected() {
        let mut sessions = Sessions::default();
        sessions.logged_in(1, b"dev-1");
        sessions.remember(1, b"dev-1", password("alice"));
        // dev-1 logs in again on connection 2; connection 1 is still there.
        sessions.logged_in(2, b"dev-1");
        sessions.revoke(1, at(10));
        assert!(sessions.ended(at(10)).is_empty());
        sessions.forget(1, Some(b"dev-1"));
        sessions.forget(2, Some(b"dev-1"));
        assert!(sessions.latest.is_empty() && sessions.credentials.is_empty());
    }
}
