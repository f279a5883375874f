//! What token logins established, per connection, and when each must end.
//!
//! mosquitto 2.0 disconnects a client only by client id
//! (`mosquitto_kick_client_by_clientid`), and a client id moves to a new
//! connection when a client logs in again (the broker takes the old one
//! over). So each client id remembers the connection of its latest login,
//! and an expired session is disconnected only while it is that one: an
//! old connection's expiry must never disconnect the fresh login that
//! replaced it. (The old connection's accesses are refused from its
//! expiry on in any case.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::SystemTime;

use mqtt_sec_auth::jwt::TokenAcl;

/// What a JWT login established for one connection, until it ends.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client id at login: a connection is only ever looked up with it.
    pub(crate) client_id: Vec<u8>,
    /// The token's `exp`: after it the connection is granted nothing, and
    /// the broker's next tick disconnects it.
    pub(crate) expires_at: SystemTime,
    /// An issuer's token with the superuser claim.
    pub(crate) superuser: bool,
    /// The token's `acl` claim.
    pub(crate) acl: Option<TokenAcl>,
}

/// The sessions of the connected clients.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_connection: HashMap<usize, Session>,
    /// For each client id with a session: the connection of its latest
    /// login (by any method).
    latest: HashMap<Vec<u8>, usize>,
    /// When each session ends, soonest first; entries of sessions gone or
    /// replaced are skipped when they come up.
    expiries: BinaryHeap<Reverse<(SystemTime, usize)>>,
}

impl Sessions {
    pub(crate) fn len(&self) -> usize {
        self.by_connection.len()
    }

    pub(crate) fn get(&self, connection: usize) -> Option<&Session> {
        self.by_connection.get(&connection)
    }

    /// A login on `connection` as `client_id` succeeded (by any method):
    /// from now on the client id is this connection's.
    pub(crate) fn logged_in(&mut self, connection: usize, client_id: &[u8]) {
        if let Some(latest) = self.latest.get_mut(client_id) {
            *latest = connection;
        }
    }

    /// A token login on `connection` set up `session`.
    pub(crate) fn insert(&mut self, connection: usize, session: Session) {
        self.latest.insert(session.client_id.clone(), connection);
        self.expiries
            .push(Reverse((session.expires_at, connection)));
        self.by_connection.insert(connection, session);
    }

    /// The connection ended (or logs in again): its session goes; its
    /// client id is forgotten when it was this connection's.
    pub(crate) fn forget(&mut self, connection: usize, client_id: Option<&[u8]>) {
        let removed = self.by_connection.remove(&connection);
        let client_id = client_id.or(removed.as_ref().map(|s| s.client_id.as_slice()));
        if let Some(client_id) = client_id
            && self.latest.get(client_id) == Some(&connection)
        {
            self.latest.remove(client_id);
        }
        // A heap of only stale entries (every session gone) is dropped
        // whole, so it cannot grow with connections that came and went.
        if self.by_connection.is_empty() {
            self.expiries.clear();
        }
    }

    /// The client ids to disconnect at `now`: those whose latest login's
    /// session has expired. Each is returned once.
    pub(crate) fn expired(&mut self, now: SystemTime) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        while let Some(Reverse((at, connection))) = self.expiries.peek().copied() {
            if at > now {
                break;
            }
            self.expiries.pop();
            let Some(session) = self.by_connection.get(&connection) else {
                continue;
            };
            // A session whose entry this is not (the connection logged in
            // again with another token) has its own entry.
            if session.expires_at != at {
                continue;
            }
            if self.latest.get(&session.client_id) == Some(&connection)
                && !due.contains(&session.client_id)
            {
                due.push(session.client_id.clone());
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
            expires_at: at(expires),
            superuser: false,
            acl: None,
        }
    }

    #[test]
    fn an_expired_session_is_due_once_at_its_expiry() {
        let mut sessions = Sessions::default();
        sessions.insert(1, session("dev-1", 5));
        sessions.insert(2, session("dev-2", 9));
        assert!(sessions.expired(at(4)).is_empty());
        assert_eq!(sessions.expired(at(5)), [b"dev-1".to_vec()]);
        assert!(sessions.expired(at(6)).is_empty());
        assert_eq!(sessions.expired(at(100)), [b"dev-2".to_vec()]);
    }

    #[test]
    fn a_fresh_login_on_the_client_id_is_never_disconnected_by_the_old_expiry() {
        let mut sessions = Sessions::default();
        sessions.insert(1, session("dev-1", 5));
        // dev-1 logs in again on connection 2 with a password.
        sessions.logged_in(2, b"dev-1");
        assert!(sessions.expired(at(5)).is_empty());
        // ...or with a fresh token, expiring later.
        sessions.insert(3, session("dev-2", 5));
        sessions.insert(4, session("dev-2", 60));
        assert!(sessions.expired(at(5)).is_empty());
        assert_eq!(sessions.expired(at(60)), [b"dev-2".to_vec()]);
    }

    #[test]
    fn a_connection_that_ended_is_not_disconnected() {
        let mut sessions = Sessions::default();
        sessions.insert(1, session("dev-1", 5));
        sessions.insert(2, session("dev-2", 5));
        sessions.forget(1, Some(b"dev-1"));
        assert_eq!(sessions.expired(at(5)), [b"dev-2".to_vec()]);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn a_new_token_on_the_same_connection_moves_its_expiry() {
        let mut sessions = Sessions::default();
        sessions.insert(1, session("dev-1", 5));
        sessions.forget(1, Some(b"dev-1"));
        sessions.insert(1, session("dev-1", 50));
        assert!(sessions.expired(at(5)).is_empty());
        assert_eq!(sessions.expired(at(50)), [b"dev-1".to_vec()]);
    }

    #[test]
    fn forgetting_the_older_connection_keeps_the_newer_ones_client_id() {
        let mut sessions = Sessions::default();
        sessions.insert(1, session("dev-1", 5));
        sessions.insert(2, session("dev-1", 9));
        // The broker ends the taken-over connection 1.
        sessions.forget(1, Some(b"dev-1"));
        assert_eq!(sessions.expired(at(9)), [b"dev-1".to_vec()]);
        sessions.forget(2, Some(b"dev-1"));
        assert!(sessions.latest.is_empty() && sessions.expiries.is_empty());
    }
}
