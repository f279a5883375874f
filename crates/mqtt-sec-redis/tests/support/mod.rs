//! What the store tests share: a redis-server per test, handles on it,
//! and times the scripts count in.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_redis::{Redis, RedisConfig};
use mqtt_sec_testkit::{RedisServer, or_skip};

/// A redis-server of its own (skipped outside CI when there is none).
pub(crate) fn server() -> Option<RedisServer> {
    or_skip(RedisServer::builder().start())
}

/// A handle on `server`'s Redis, as its default user.
pub(crate) fn redis(server: &RedisServer) -> Redis {
    Redis::new(RedisConfig::new(server.url().into())).unwrap()
}

/// A server with a password and a user who may touch only `other:*`, and
/// a handle as that user: every call of a store is refused.
pub(crate) fn refusing() -> Option<(RedisServer, Redis)> {
    let server = or_skip(
        RedisServer::builder()
            .password("pw")
            .acl_user("stranger", "str4nger", "~other:* +@all")
            .start(),
    )?;
    let stranger = Redis::new(RedisConfig::new(
        server.url_as("stranger", "str4nger").into(),
    ))
    .unwrap();
    Some((server, stranger))
}

/// `ms` after a whole second an hour ahead: whole milliseconds (Redis'
/// precision), and far enough ahead that the keys' expiry (absolute
/// times) drops none of them while a case runs.
pub(crate) fn t(ms: u64) -> SystemTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    UNIX_EPOCH + Duration::from_millis(now.as_millis() as u64 / 1000 * 1000 + 3_600_000 + ms)
}
