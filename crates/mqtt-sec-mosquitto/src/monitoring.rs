//! The plugin's counters as retained messages under a `$SYS` prefix (where
//! mosquitto publishes its own statistics), every interval, from the
//! broker's tick (mosquitto's broker functions are not thread-safe, so the
//! broker's loop publishes, never a thread of ours).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::counters::Counters;

/// Where and how often (the `[monitoring]` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MonitoringPolicy {
    /// The topic prefix, under `$SYS/`.
    pub(crate) sys_topic: String,
    /// How often; zero publishes nothing.
    pub(crate) interval: Duration,
    /// Where the Prometheus exporter listens (a loopback address).
    pub(crate) prometheus: Option<SocketAddr>,
}

impl Default for MonitoringPolicy {
    fn default() -> Self {
        Self {
            sys_topic: "$SYS/broker/mqtt-sec".to_owned(),
            // mosquitto's own sys_interval default.
            interval: Duration::from_secs(10),
            prometheus: None,
        }
    }
}

/// A message for the broker to publish (retained, QoS 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The topic.
    pub topic: String,
    /// The payload: a counter as decimal text.
    pub payload: Vec<u8>,
}

/// When the counters were last published.
#[derive(Debug, Default)]
pub(crate) struct SysPublisher {
    last: Mutex<Option<SystemTime>>,
}

impl SysPublisher {
    /// The counters to publish at `now`, when an interval has passed since
    /// the last time (or a clock step went backwards); none otherwise.
    pub(crate) fn due(
        &self,
        policy: &MonitoringPolicy,
        counters: Counters,
        now: SystemTime,
    ) -> Vec<Publication> {
        if policy.interval.is_zero() {
            return Vec::new();
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let waited = last.map(|at| now.duration_since(at));
        if matches!(waited, Some(Ok(waited)) if waited < policy.interval) {
            return Vec::new();
        }
        *last = Some(now);
        counters
            .named()
            .into_iter()
            .chain(counters.gauges())
            .map(|(name, _, value)| Publication {
                topic: format!("{}/{name}", policy.sys_topic),
                payload: value.to_string().into_bytes(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    #[test]
    fn counters_are_published_once_per_interval() {
        let (policy, publisher) = (MonitoringPolicy::default(), SysPublisher::default());
        let counters = Counters {
            password_verifications: 5,
            locked_out_logins: 995,
            ..Counters::default()
        };
        let first = publisher.due(&policy, counters, at(0));
        assert_eq!(first.len(), 16);
        assert_eq!(
            first[0],
            Publication {
                topic: "$SYS/broker/mqtt-sec/password_verifications".into(),
                payload: b"5".to_vec(),
            }
        );
        assert_eq!(first[2].payload, b"995");
        assert_eq!(first[15].topic, "$SYS/broker/mqtt-sec/lockouts_active");
        assert!(publisher.due(&policy, counters, at(9)).is_empty());
        assert_eq!(publisher.due(&policy, counters, at(10)).len(), 16);
        // A clock stepped back publishes again rather than going quiet.
        assert_eq!(publisher.due(&policy, counters, at(5)).len(), 16);
    }

    #[test]
    fn an_interval_of_zero_publishes_nothing() {
        let policy = MonitoringPolicy {
            interval: Duration::ZERO,
            ..MonitoringPolicy::default()
        };
        assert!(
            SysPublisher::default()
                .due(&policy, Counters::default(), at(0))
                .is_empty()
        );
    }
}
