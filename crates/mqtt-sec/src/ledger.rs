//! Which filter each SUBSCRIBE carried, so that a filter the broker refuses
//! in its SUBACK is forgotten: the guard then refuses what arrives on it as
//! unexpected, as for a filter never subscribed, and the refusal names it.
//!
//! rumqttc reports a SUBSCRIBE only by its packet id, when it writes it
//! (`Outgoing::Subscribe(pkid)`), and takes requests from its channel in
//! order; the secure clients send one filter per SUBSCRIBE and queue them
//! one at a time, so the n-th filter queued is the n-th SUBSCRIBE written.
//! A SUBSCRIBE lost with its connection before the SUBACK leaves an entry
//! that the next SUBSCRIBE with the same packet id replaces (rumqttc reuses
//! ids below its inflight limit, so the ledger stays bounded).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use crate::event::BrokerRefusal;
use crate::pipeline::Incoming;

/// Filters queued, and filters sent by packet id, until their SUBACK.
#[derive(Debug, Default)]
pub(crate) struct SubscribeLedger {
    /// Held while one SUBSCRIBE is queued, so that two tasks subscribing at
    /// once cannot queue in one order and record in the other.
    queuing: tokio::sync::Mutex<()>,
    filters: Mutex<Filters>,
}

#[derive(Debug, Default)]
struct Filters {
    queued: VecDeque<String>,
    sent: HashMap<u16, String>,
}

impl SubscribeLedger {
    /// Records `filter` and runs `queue`, which hands its SUBSCRIBE to
    /// rumqttc; a request that could not be queued is unrecorded.
    pub(crate) async fn queue<E>(
        &self,
        filter: &str,
        queue: impl Future<Output = Result<(), E>>,
    ) -> Result<(), E> {
        let _one_at_a_time = self.queuing.lock().await;
        self.filters().queued.push_back(filter.to_owned());
        let queued = queue.await;
        if queued.is_err() {
            // The last entry is this one: the lock keeps others from queuing,
            // and the event loop only takes what rumqttc has written.
            self.filters().queued.pop_back();
        }
        queued
    }

    /// rumqttc wrote the next queued SUBSCRIBE with packet id `pkid`.
    pub(crate) fn sent(&self, pkid: u16) {
        let mut filters = self.filters();
        if let Some(filter) = filters.queued.pop_front() {
            filters.sent.insert(pkid, filter);
        }
    }

    /// The SUBACK for `pkid` arrived: the filter it answers, if the client
    /// sent it.
    pub(crate) fn acknowledged(&self, pkid: u16) -> Option<String> {
        self.filters().sent.remove(&pkid)
    }

    /// The SUBACK for `pkid`, refused or not (`refusal`): a refused
    /// filter is forgotten by `incoming`'s guard and named in the refusal.
    pub(crate) fn answer(
        &self,
        pkid: u16,
        refusal: Option<BrokerRefusal>,
        incoming: &Incoming,
    ) -> Option<BrokerRefusal> {
        let filter = self.acknowledged(pkid);
        let mut refusal = refusal?;
        if let Some(filter) = &filter {
            incoming.forget(filter);
        }
        refusal.filter = filter;
        Some(refusal)
    }

    fn filters(&self) -> std::sync::MutexGuard<'_, Filters> {
        self.filters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(ledger: &SubscribeLedger, filter: &str, ok: bool) -> Result<(), ()> {
        let queued = if ok { Ok(()) } else { Err(()) };
        run(ledger.queue(filter, async move { queued }))
    }

    /// Runs a future that never waits (the lock is free in these tests).
    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn each_suback_finds_the_filter_its_subscribe_carried() {
        let ledger = SubscribeLedger::default();
        queue(&ledger, "a/#", true).unwrap();
        queue(&ledger, "b/#", true).unwrap();
        ledger.sent(7);
        ledger.sent(3);
        assert_eq!(ledger.acknowledged(3).as_deref(), Some("b/#"));
        assert_eq!(ledger.acknowledged(7).as_deref(), Some("a/#"));
        // Each SUBACK is answered once; an id never sent finds nothing.
        assert_eq!(ledger.acknowledged(7), None);
        assert_eq!(ledger.acknowledged(9), None);
    }

    #[test]
    fn a_subscribe_that_could_not_be_queued_is_not_recorded() {
        let ledger = SubscribeLedger::default();
        queue(&ledger, "a/#", true).unwrap();
        queue(&ledger, "lost/#", false).unwrap_err();
        queue(&ledger, "b/#", true).unwrap();
        ledger.sent(1);
        ledger.sent(2);
        assert_eq!(ledger.acknowledged(1).as_deref(), Some("a/#"));
        assert_eq!(ledger.acknowledged(2).as_deref(), Some("b/#"));
    }

    #[test]
    fn a_reused_packet_id_answers_for_the_newest_subscribe() {
        let ledger = SubscribeLedger::default();
        queue(&ledger, "lost-with-its-connection/#", true).unwrap();
        ledger.sent(1);
        queue(&ledger, "b/#", true).unwrap();
        ledger.sent(1);
        assert_eq!(ledger.acknowledged(1).as_deref(), Some("b/#"));
        // Without a queued filter, a written SUBSCRIBE records nothing.
        ledger.sent(2);
        assert_eq!(ledger.acknowledged(2), None);
    }
}
