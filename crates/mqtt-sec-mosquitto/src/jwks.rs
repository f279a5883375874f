//! JWKS endpoints: a JWT method's issuer keys fetched over HTTPS by a
//! thread of their own (mqtt-sec-auth's `BackgroundKeySource`), so a slow
//! or unreachable endpoint never holds up the broker's loop: a login reads
//! the set in memory. A token naming an unknown `kid` is refused at once
//! and makes the thread fetch early (rate limited); its client's next
//! attempt finds the key. A set older than the maximum staleness is not
//! used: tokens from the endpoint are refused, not counted as failed logins
//! (the client is not at fault), until it answers again.
//!
//! Endpoints outlive configurations: a reload whose endpoint settings are
//! unchanged keeps the running one (its keys, its thread), so a SIGHUP
//! neither refetches nor refuses tokens while a new set is fetched. What
//! the thread did is logged from the broker's tick (mosquitto's logging is
//! not for other threads), once per change of condition.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::KeySourceError;
use mqtt_sec_auth::jwt::{BackgroundKeySource, KeyFetcher, KeySet, KeySource};

/// What identifies an endpoint: equal settings share one running endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointSettings {
    pub(crate) url: String,
    /// The CA file's contents (`None`: Mozilla's roots), so that a changed
    /// file is a new endpoint even under the same name.
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) pins: Vec<String>,
    pub(crate) refresh: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) min_refetch: Duration,
}

/// A running endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    settings: EndpointSettings,
    source: Arc<BackgroundKeySource>,
    /// The condition last logged, and the fetch it was logged for.
    reported: Mutex<Reported>,
}

#[derive(Debug, Default)]
struct Reported {
    condition: Condition,
    fetched_at: Option<SystemTime>,
}

/// An endpoint's condition, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Condition {
    /// No attempt has finished yet.
    #[default]
    Starting,
    /// The last attempt succeeded.
    Fresh,
    /// Attempts fail; the last good set (if any) is still used.
    Failing,
    /// The set is older than the maximum staleness (or there never was
    /// one): tokens from this endpoint are refused.
    Refusing,
}

/// What changed since the last report.
#[derive(Debug)]
pub(crate) struct Report {
    /// A log line, when the condition changed.
    pub(crate) line: Option<(Condition, String)>,
    /// A new set was fetched: connections whose key it lacks are revoked.
    pub(crate) new_set: bool,
}

impl Endpoint {
    /// The source the JWT verifier reads.
    pub(crate) fn source(&self) -> Arc<BackgroundKeySource> {
        Arc::clone(&self.source)
    }

    /// The set in use at `now`, if it is fresh enough.
    pub(crate) fn keys(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        self.source.keys(now)
    }

    /// What changed since the last call: called from the tick.
    pub(crate) fn report(&self, now: SystemTime) -> Report {
        let status = self.source.status();
        let condition = match (status.attempts, self.source.keys(now)) {
            (0, _) => Condition::Starting,
            (_, Err(_)) => Condition::Refusing,
            (_, Ok(_)) if status.failures > 0 => Condition::Failing,
            (_, Ok(_)) => Condition::Fresh,
        };
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new_set = status.fetched_at != reported.fetched_at;
        reported.fetched_at = status.fetched_at;
        if condition == reported.condition {
            return Report {
                line: None,
                new_set,
            };
        }
        reported.condition = condition;
        let url = &self.settings.url;
        let error = status
            .last_error
            .as_ref()
            .map_or_else(String::new, |e| mqtt_sec_core::Chain(e).to_string());
        let age = status
            .fetched_at
            .and_then(|at| now.duration_since(at).ok())
            .map_or_else(
                || "no set was ever fetched".to_owned(),
                |age| format!("the set in use was fetched {} s ago", age.as_secs()),
            );
        let line = match condition {
            Condition::Starting => None,
            Condition::Fresh => Some(format!("JWKS {url}: {} keys fetched", status.keys)),
            Condition::Failing => Some(format!(
                "JWKS {url}: refresh failed, still using the last good set ({age}, at most {} s): {error}",
                self.settings.max_staleness.as_secs()
            )),
            Condition::Refusing => Some(format!(
                "JWKS {url}: tokens from this endpoint are refused until it answers ({age}, the maximum staleness is {} s): {error}",
                self.settings.max_staleness.as_secs()
            )),
        };
        Report {
            line: line.map(|line| (condition, line)),
            new_set,
        }
    }
}

/// The running endpoints, shared by successive configurations.
#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    running: Mutex<Vec<Weak<Endpoint>>>,
}

impl Endpoints {
    /// The running endpoint with `settings`, or a new one started with the
    /// fetcher `build` makes.
    ///
    /// # Errors
    /// The fetcher could not be made or its thread not spawned.
    pub(crate) fn get<F: KeyFetcher + 'static>(
        &self,
        settings: EndpointSettings,
        build: impl FnOnce() -> Result<F, String>,
    ) -> Result<Arc<Endpoint>, String> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        running.retain(|endpoint| endpoint.strong_count() > 0);
        if let Some(endpoint) = running
            .iter()
            .filter_map(Weak::upgrade)
            .find(|endpoint| endpoint.settings == settings)
        {
            return Ok(endpoint);
        }
        let source = BackgroundKeySource::builder(build()?)
            .refresh_every(settings.refresh)
            .max_staleness(settings.max_staleness)
            .min_refetch(settings.min_refetch)
            .spawn()
            .map_err(|e| format!("cannot start the fetch thread: {e}"))?;
        let endpoint = Arc::new(Endpoint {
            settings,
            source: Arc::new(source),
            reported: Mutex::new(Reported::default()),
        });
        running.push(Arc::downgrade(&endpoint));
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn settings(url: &str) -> EndpointSettings {
        EndpointSettings {
            url: url.to_owned(),
            ca_pem: None,
            pins: Vec::new(),
            refresh: Duration::from_secs(3600),
            max_staleness: Duration::from_secs(3600),
            min_refetch: Duration::from_secs(30),
        }
    }

    fn empty() -> Result<impl KeyFetcher, String> {
        Ok(|| KeySet::from_jwks_json(r#"{"keys": []}"#).map_err(Into::into))
    }

    fn running(endpoints: &Endpoints) -> usize {
        endpoints.running.lock().unwrap().len()
    }

    #[test]
    fn equal_settings_share_an_endpoint_and_dropped_ones_are_forgotten() {
        let endpoints = Endpoints::default();
        let a = endpoints.get(settings("https://a"), empty).unwrap();
        let again = endpoints
            .get(
                settings("https://a"),
                || -> Result<fn() -> Result<KeySet, KeySourceError>, String> {
                    Err("not built: the running one is shared".into())
                },
            )
            .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        drop((a, again));
        let _b = endpoints.get(settings("https://b"), empty).unwrap();
        assert_eq!(running(&endpoints), 1, "the dropped endpoint is forgotten");
    }

    #[test]
    fn a_report_names_a_new_set_once_and_a_condition_once() {
        let endpoints = Endpoints::default();
        let endpoint = endpoints.get(settings("https://a"), empty).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while endpoint.source.status().attempts == 0 {
            assert!(Instant::now() < end);
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = SystemTime::now();
        let first = endpoint.report(now);
        assert!(first.new_set);
        let (condition, line) = first.line.unwrap();
        assert_eq!(condition, Condition::Fresh);
        assert!(line.contains("JWKS https://a: 0 keys fetched"), "{line}");
        let second = endpoint.report(now);
        assert!(!second.new_set, "the same set is no news");
        assert!(second.line.is_none());
        // Past the maximum staleness the condition changes, once.
        let late = now + Duration::from_secs(7200);
        let (condition, line) = endpoint.report(late).line.unwrap();
        assert_eq!(condition, Condition::Refusing);
        assert!(
            line.contains("tokens from this endpoint are refused"),
            "{line}"
        );
        assert!(endpoint.report(late).line.is_none());
    }
}
