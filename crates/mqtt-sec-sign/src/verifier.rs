//! The subscriber side: the verification policy, applied in a fixed order.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::{Clock, SystemClock};
use crate::envelope::{self, Intent};
use crate::error::{MalformedEnvelope, VerifyError};
use crate::keys::{Entry, KeySet, TrustedKey};
use crate::replay::{EnvelopeId, MemoryReplayStore, ReplayCheck, ReplayRejection, ReplayStore};
use crate::{Kid, topic};
use mqtt_sec_core::ed25519::{self, BatchItem};
use mqtt_sec_core::revocation::{Credential, RevocationList, RevocationListError};

/// Default largest envelope, in bytes.
pub const DEFAULT_MAX_ENVELOPE: usize = 256 * 1024;
/// Default allowed difference between the issue time and the verifier's clock.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Default maximum age of a retained message.
pub const DEFAULT_RETAINED_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default time after its first acceptance during which the same envelope
/// again counts as a duplicate delivery rather than a replay.
pub const DEFAULT_REDELIVERY_WINDOW: Duration = Duration::from_secs(30);

/// How the broker delivered a message: the MQTT retain flag on delivery.
///
/// The flag is not signed, so it only counts together with the publisher's
/// signed intent ([`Intent`]): an envelope is judged as retained state only
/// when it was signed as retained **and** arrives with the retain flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// A message forwarded as it was published: it must be fresh (within the
    /// clock skew) and pass the replay window.
    #[default]
    Live,
    /// A retained message sent on subscribe (the MQTT retain flag set on
    /// delivery). An envelope signed as retained may then be up to the
    /// retained maximum age old and skips the replay window, because the
    /// broker legitimately delivers it again on every subscription; one
    /// signed live is judged live all the same (fresh, accepted once).
    Retained,
}

/// An incoming message to verify.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    topic: &'a str,
    body: Body<'a>,
    delivery: Delivery,
}

#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    Envelope(&'a [u8]),
    Detached {
        payload: &'a [u8],
        signature: &'a str,
    },
}

impl<'a> Message<'a> {
    /// A message whose MQTT payload is an envelope with the payload attached.
    pub fn envelope(topic: &'a str, envelope: &'a [u8]) -> Self {
        Self {
            topic,
            body: Body::Envelope(envelope),
            delivery: Delivery::Live,
        }
    }

    /// An MQTT v5 message whose payload travels unchanged and whose signature is
    /// the value of the [`DETACHED_PROPERTY`](crate::DETACHED_PROPERTY) user property.
    pub fn detached(topic: &'a str, payload: &'a [u8], signature: &'a str) -> Self {
        Self {
            topic,
            body: Body::Detached { payload, signature },
            delivery: Delivery::Live,
        }
    }

    /// Sets how the message was delivered.
    #[must_use]
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Marks the message retained (`true`) or live, from the MQTT retain flag.
    #[must_use]
    pub fn retained(self, retain: bool) -> Self {
        self.delivery(if retain {
            Delivery::Retained
        } else {
            Delivery::Live
        })
    }
}

/// A message that passed every check. Only a [`Verifier`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    kid: Kid,
    topic: String,
    payload: Vec<u8>,
    issued_at: u64,
    seq: u64,
    retained: bool,
}

impl Verified {
    /// The key that signed it.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The topic it was signed for and arrived on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The application payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The application payload, owned.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// When the signer says it signed it (whole seconds).
    pub fn issued_at(&self) -> SystemTime {
        // Freshness bounded it by the verifier's clock, so this cannot overflow.
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.issued_at))
            .unwrap_or(UNIX_EPOCH)
    }

    /// The signer's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether it was accepted as retained state: signed as retained and
    /// delivered with the retain flag, so the same envelope may be accepted
    /// again on a later subscription. Act on it as state, not as an event.
    pub fn is_retained(&self) -> bool {
        self.retained
    }
}

/// Verifies envelopes against a [`KeySet`].
///
/// The checks run in this order, and the first failure is the error: size
/// limit, decoding, topic name, key lookup (unknown, revoked, outside its
/// validity), topic allowed for the key, `verify_strict` over the exact bytes
/// received, freshness, and finally the replay window, which is only updated
/// once everything else passed. Every decision is an audit event on
/// `mqtt_sec::audit` (kid, topic, reason; never the payload).
///
/// Clones share the key set and the replay state, so one verifier can serve
/// many tasks.
///
/// ```
/// use mqtt_sec_sign::{KeySet, Signer, TrustedKey, Verifier, VerifyError};
/// let signer = Signer::generate()?;
/// let keys = KeySet::new();
/// keys.insert(TrustedKey::new(signer.verifying_key())?)?;
/// let verifier = Verifier::new(keys);
///
/// let envelope = signer.sign("sensors/kitchen/temp", b"21.5")?;
/// let message = verifier.verify("sensors/kitchen/temp", &envelope)?;
/// assert_eq!(message.payload(), b"21.5");
///
/// // The same envelope again is dropped (a duplicate delivery, or a replay
/// // within 30 s of the first); on another topic it is a forgery.
/// assert!(matches!(verifier.verify("sensors/kitchen/temp", &envelope), Err(VerifyError::Duplicate { .. })));
/// assert!(matches!(verifier.verify("sensors/hall/temp", &envelope), Err(VerifyError::SignatureInvalid)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeySet,
    clock: Arc<dyn Clock>,
    replay: Arc<dyn ReplayStore>,
    revocations: Option<Arc<dyn RevocationList>>,
    max_envelope: usize,
    clock_skew: Duration,
    retained_max_age: Duration,
    redelivery_window: Duration,
}

/// What the checks before the signature produced. The payload is still
/// borrowed from the message: it is copied only once every check passed.
struct Candidate<'a> {
    kid: Kid,
    iat: u64,
    seq: u64,
    intent: Intent,
    signature: [u8; envelope::SIGNATURE_LEN],
    payload: &'a [u8],
    key: Arc<TrustedKey>,
    tbs: Vec<u8>,
}

/// A message whose signature verified and that is fresh: all that is left
/// is the replay window, unless it is retained state.
struct Fresh<'a> {
    candidate: Candidate<'a>,
    envelope: EnvelopeId,
    at: SystemTime,
    retained: bool,
}

impl Fresh<'_> {
    /// What the replay store is asked, unless the message is retained state.
    fn replay_check(&self) -> Option<ReplayCheck<'_>> {
        (!self.retained).then_some(ReplayCheck {
            kid: &self.candidate.kid,
            seq: self.candidate.seq,
            envelope: self.envelope,
            now: self.at,
        })
    }
}

impl Verifier {
    /// A verifier with the defaults: 256 KiB envelopes, 30 s clock skew, 24 h
    /// for retained messages, replay windows of 64 in memory, the system clock.
    pub fn new(keys: KeySet) -> Self {
        Self {
            keys,
            clock: Arc::new(SystemClock),
            replay: Arc::new(MemoryReplayStore::default()),
            revocations: None,
            max_envelope: DEFAULT_MAX_ENVELOPE,
            clock_skew: DEFAULT_CLOCK_SKEW,
            retained_max_age: DEFAULT_RETAINED_MAX_AGE,
            redelivery_window: DEFAULT_REDELIVERY_WINDOW,
        }
    }

    /// Reads the time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Rejects envelopes larger than `bytes` before parsing them.
    #[must_use]
    pub fn max_envelope_len(mut self, bytes: usize) -> Self {
        self.max_envelope = bytes;
        self
    }

    /// How far the issue time of a live message may be from the verifier's clock.
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// How old a retained message may be.
    #[must_use]
    pub fn retained_max_age(mut self, age: Duration) -> Self {
        self.retained_max_age = age;
        self
    }

    /// How long after its first acceptance the same envelope again counts
    /// as a duplicate delivery ([`VerifyError::Duplicate`]: MQTT QoS 1
    /// redelivers after a reconnect) rather than a replay
    /// ([`VerifyError::Replayed`]). Default 30 s; zero makes every repeat a
    /// replay. Either way nothing is delivered twice.
    #[must_use]
    pub fn redelivery_window(mut self, window: Duration) -> Self {
        self.redelivery_window = window;
        self
    }

    /// Uses in-memory replay windows of `size` sequence numbers (default 64).
    #[must_use]
    pub fn replay_window(mut self, size: usize) -> Self {
        self.replay = Arc::new(MemoryReplayStore::new(size));
        self
    }

    /// Keeps replay state in `store` (to persist or share it).
    #[must_use]
    pub fn with_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = store;
        self
    }

    /// Also refuses the keys that `list` revokes ([`VerifyError::KeyRevoked`]),
    /// a list shared with other verifiers (the mqtt-sec-redis crate's, which
    /// `mqtt-sec revoke kid` writes to). It is asked once per message, or once
    /// per batch, after the signature and freshness checks, so that forged
    /// or stale traffic costs it nothing; a list that cannot answer refuses
    /// the message ([`VerifyError::RevocationList`]).
    #[must_use]
    pub fn with_revocation_list(mut self, list: Arc<dyn RevocationList>) -> Self {
        self.revocations = Some(list);
        self
    }

    /// The keys this verifier trusts; revoking or adding one here takes
    /// effect for every clone.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Verifies a live envelope received on `topic`.
    ///
    /// # Errors
    /// The first failed check, as a [`VerifyError`].
    pub fn verify(&self, topic: &str, envelope: &[u8]) -> Result<Verified, VerifyError> {
        self.verify_message(&Message::envelope(topic, envelope))
    }

    /// Verifies one message.
    ///
    /// # Errors
    /// The first failed check, as a [`VerifyError`].
    pub fn verify_message(&self, message: &Message<'_>) -> Result<Verified, VerifyError> {
        let now = self.clock.now();
        let mut kid = None;
        let result = self.precheck(message, now).and_then(|candidate| {
            kid = Some(candidate.kid.clone());
            let signature_ok = candidate
                .key
                .public_key()
                .verify(&candidate.tbs, &candidate.signature);
            let fresh = self.fresh(candidate, signature_ok, message, now)?;
            if let Some(kid) = self.revoked_among(&[&fresh.candidate.kid], now)?.pop() {
                return Err(VerifyError::KeyRevoked { kid });
            }
            let replay = fresh.replay_check().map(|c| {
                self.replay
                    .check_and_record(c.kid, c.seq, c.envelope, c.now)
            });
            self.finish(fresh, replay, message)
        });
        audit(message.topic, kid.as_ref(), &result);
        result
    }

    /// Verifies many messages, with one batch equation for the signatures when
    /// they are all valid, and single verification to pinpoint failures when
    /// not. Returns one result per message, in order; freshness and replay are
    /// applied in that order too, so a duplicate inside the batch is caught.
    pub fn verify_batch(&self, messages: &[Message<'_>]) -> Vec<Result<Verified, VerifyError>> {
        let now = self.clock.now();
        let candidates: Vec<Result<Candidate<'_>, VerifyError>> =
            messages.iter().map(|m| self.precheck(m, now)).collect();
        let items: Vec<BatchItem<'_>> = candidates
            .iter()
            .flatten()
            .map(|c| BatchItem {
                key: c.key.public_key(),
                message: &c.tbs,
                signature: &c.signature,
            })
            .collect();
        let mut verdicts = ed25519::verify_batch(&items).into_iter();
        let fresh: Vec<(Option<Kid>, Result<Fresh<'_>, VerifyError>)> = candidates
            .into_iter()
            .zip(messages)
            .map(|(candidate, message)| match candidate {
                Ok(c) => {
                    let ok = verdicts.next().unwrap_or(false);
                    (Some(c.kid.clone()), self.fresh(c, ok, message, now))
                }
                Err(e) => (None, Err(e)),
            })
            .collect();
        let fresh = self.drop_revoked(fresh, now);
        // One call to the store for the whole batch (one round trip for a
        // network store), in message order.
        let checks: Vec<ReplayCheck<'_>> = fresh
            .iter()
            .filter_map(|(_, f)| f.as_ref().ok()?.replay_check())
            .collect();
        let expected = checks.len();
        let mut replays = self.replay.check_and_record_batch(&checks).into_iter();
        drop(checks);
        fresh
            .into_iter()
            .zip(messages)
            .map(|((kid, fresh), message)| {
                let result = fresh.and_then(|f| {
                    let replay = f.replay_check().is_some().then(|| {
                        // A store that answers fewer checks than it was
                        // given fails closed for the rest.
                        replays.next().unwrap_or_else(|| {
                            Err(ReplayRejection::store(std::io::Error::other(format!(
                                "the replay store answered fewer than the {expected} checks it was given"
                            ))))
                        })
                    });
                    self.finish(f, replay, message)
                });
                audit(message.topic, kid.as_ref(), &result);
                result
            })
            .collect()
    }

    /// Which of `kids` the revocation list revokes (none without a list).
    fn revoked_among(&self, kids: &[&Kid], now: SystemTime) -> Result<Vec<Kid>, VerifyError> {
        let Some(list) = &self.revocations else {
            return Ok(Vec::new());
        };
        let asked: Vec<Credential<'_>> =
            kids.iter().map(|k| Credential::kid(k.as_bytes())).collect();
        let revoked = list
            .revoked(&asked, now)
            .map_err(VerifyError::RevocationList)?;
        if revoked.len() != kids.len() {
            // A list that answers fewer questions than it was asked
            // fails closed.
            return Err(VerifyError::RevocationList(RevocationListError::store(
                std::io::Error::other(format!(
                    "the revocation list answered {} of the {} key ids it was asked",
                    revoked.len(),
                    kids.len()
                )),
            )));
        }
        Ok(kids
            .iter()
            .zip(revoked)
            .filter(|(_, revoked)| *revoked)
            .map(|(kid, _)| (*kid).clone())
            .collect())
    }

    /// The batch's fresh messages whose key the revocation list revokes
    /// refused, asking the list once for the batch's distinct key ids.
    fn drop_revoked<'a>(
        &self,
        fresh: Vec<(Option<Kid>, Result<Fresh<'a>, VerifyError>)>,
        now: SystemTime,
    ) -> Vec<(Option<Kid>, Result<Fresh<'a>, VerifyError>)> {
        if self.revocations.is_none() {
            return fresh;
        }
        let mut kids: Vec<&Kid> = fresh
            .iter()
            .filter_map(|(_, f)| Some(&f.as_ref().ok()?.candidate.kid))
            .collect();
        kids.sort_unstable();
        kids.dedup();
        let verdict = self.revoked_among(&kids, now);
        fresh
            .into_iter()
            .map(|(kid, f)| {
                let f = f.and_then(|f| match &verdict {
                    Err(e) => Err(e.clone()),
                    Ok(revoked) if revoked.contains(&f.candidate.kid) => {
                        Err(VerifyError::KeyRevoked {
                            kid: f.candidate.kid.clone(),
                        })
                    }
                    Ok(_) => Ok(f),
                });
                (kid, f)
            })
            .collect()
    }

    /// Everything before the signature: limits, decoding, key and topic.
    /// Nothing of the message is copied here but the bytes that are signed,
    /// and only once the key and topic checks passed.
    fn precheck<'a>(
        &self,
        message: &Message<'a>,
        now: SystemTime,
    ) -> Result<Candidate<'a>, VerifyError> {
        let decoded_property;
        let (parsed, payload) = match message.body {
            Body::Envelope(bytes) => {
                if bytes.len() > self.max_envelope {
                    return Err(VerifyError::TooLarge {
                        len: bytes.len(),
                        max: self.max_envelope,
                    });
                }
                let parsed = envelope::decode(bytes)?;
                let payload = parsed.payload.ok_or(MalformedEnvelope::PayloadMode)?;
                (parsed, payload)
            }
            Body::Detached { payload, signature } => {
                // The payload travels beside the envelope: the same limit
                // applies to it as to an attached envelope.
                if payload.len() > self.max_envelope {
                    return Err(VerifyError::TooLarge {
                        len: payload.len(),
                        max: self.max_envelope,
                    });
                }
                let max = self.max_envelope.div_ceil(3).saturating_mul(4);
                if signature.len() > max {
                    return Err(VerifyError::TooLarge {
                        len: signature.len(),
                        max,
                    });
                }
                decoded_property = URL_SAFE_NO_PAD
                    .decode(signature)
                    .map_err(|_| MalformedEnvelope::BadDetachedProperty)?;
                let parsed = envelope::decode(&decoded_property)?;
                if parsed.payload.is_some() {
                    return Err(MalformedEnvelope::PayloadMode.into());
                }
                (parsed, payload)
            }
        };
        topic::check_topic_name(message.topic)?;
        let key = match self.keys.get(&parsed.kid) {
            None => return Err(VerifyError::UnknownKid { kid: parsed.kid }),
            Some(Entry::Revoked) => return Err(VerifyError::KeyRevoked { kid: parsed.kid }),
            Some(Entry::Trusted(key)) => key,
        };
        if !key.valid_at(now) {
            return Err(VerifyError::KeyNotValid { kid: parsed.kid });
        }
        if !key.may_sign_for(message.topic) {
            return Err(VerifyError::TopicNotAllowed {
                kid: parsed.kid,
                topic: topic::bounded(message.topic),
            });
        }
        let tbs = envelope::sig_structure(parsed.protected, message.topic, payload);
        Ok(Candidate {
            kid: parsed.kid,
            iat: parsed.iat,
            seq: parsed.seq,
            intent: parsed.intent,
            signature: parsed.signature,
            payload,
            key,
            tbs,
        })
    }

    /// The signature's verdict, then freshness: what stands between a
    /// message and the replay window.
    fn fresh<'a>(
        &self,
        candidate: Candidate<'a>,
        signature_ok: bool,
        message: &Message<'_>,
        now: SystemTime,
    ) -> Result<Fresh<'a>, VerifyError> {
        if !signature_ok {
            return Err(VerifyError::SignatureInvalid);
        }
        let issued = Duration::from_secs(candidate.iat);
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        // The retain flag is the broker's (or any publisher's) to set; only
        // the signed intent together with it makes a message retained state.
        let retained =
            candidate.intent == Intent::Retained && message.delivery == Delivery::Retained;
        let max_age = if retained {
            self.retained_max_age
        } else {
            self.clock_skew
        };
        if issued > now {
            let ahead = issued - now;
            if ahead > self.clock_skew {
                return Err(VerifyError::FromFuture { ahead });
            }
        } else if now - issued > max_age {
            return Err(VerifyError::Stale {
                age: now - issued,
                max: max_age,
            });
        }
        Ok(Fresh {
            envelope: EnvelopeId::of_signature(&candidate.signature),
            at: UNIX_EPOCH + now,
            retained,
            candidate,
        })
    }

    /// The replay window's verdict (`None` for retained state, which skips
    /// it), as the message's result.
    fn finish(
        &self,
        fresh: Fresh<'_>,
        replay: Option<Result<(), ReplayRejection>>,
        message: &Message<'_>,
    ) -> Result<Verified, VerifyError> {
        let Fresh {
            candidate,
            envelope,
            at,
            retained,
        } = fresh;
        if let Some(Err(rejection)) = replay {
            return Err(match rejection {
                // The same envelope a moment after it was accepted: what
                // QoS 1 redelivery looks like. Anything else is a replay.
                ReplayRejection::Replayed {
                    earlier: Some(earlier),
                } if earlier.envelope == envelope
                    && at.duration_since(earlier.at).unwrap_or_default()
                        < self.redelivery_window =>
                {
                    VerifyError::Duplicate {
                        kid: candidate.kid,
                        seq: candidate.seq,
                    }
                }
                ReplayRejection::Replayed { .. } => VerifyError::Replayed {
                    kid: candidate.kid,
                    seq: candidate.seq,
                },
                ReplayRejection::TooOld { highest } => VerifyError::SequenceTooOld {
                    kid: candidate.kid,
                    seq: candidate.seq,
                    highest,
                },
                ReplayRejection::Store(e) => VerifyError::ReplayStore(e),
            });
        }
        Ok(Verified {
            kid: candidate.kid,
            topic: message.topic.to_owned(),
            payload: candidate.payload.to_vec(),
            issued_at: candidate.iat,
            seq: candidate.seq,
            retained,
        })
    }
}

/// One audit event per decision: kid, topic and reason, never the payload.
pub(crate) fn audit(topic: &str, kid: Option<&Kid>, result: &Result<Verified, VerifyError>) {
    let topic = topic::Bounded(topic);
    match result {
        Ok(v) => tracing::debug!(
            target: "mqtt_sec::audit",
            kid = %v.kid, topic = ?topic, seq = v.seq, "signed message accepted"
        ),
        Err(VerifyError::Duplicate { kid, seq }) => tracing::debug!(
            target: "mqtt_sec::audit",
            kid = %kid, topic = ?topic, seq, reason = "duplicate",
            "duplicate delivery of an accepted message dropped"
        ),
        Err(e) => {
            let kid = match (kid, e) {
                (Some(kid), _)
                | (_, VerifyError::UnknownKid { kid })
                | (_, VerifyError::KeyRevoked { kid })
                | (_, VerifyError::KeyNotValid { kid })
                | (_, VerifyError::TopicNotAllowed { kid, .. }) => Some(kid),
                _ => None,
            };
            let kid = kid.map_or_else(|| "-".to_owned(), Kid::to_string);
            tracing::warn!(
                target: "mqtt_sec::audit",
                kid = %kid, topic = ?topic, reason = e.reason(), error = %mqtt_sec_core::Chain(e),
                "signed message rejected"
            );
        }
    }
}
