//! The secure client without tokio in the application, as rumqttc's
//! blocking `Client`/`Connection`: the same builder, the same pipeline and
//! decisions; the connection runs the event loop on its own
//! single-threaded runtime, as rumqttc's `Connection` does.
//!
//! ```no_run
//! # fn run(signer: std::sync::Arc<mqtt_sec::sign::Signer>) -> Result<(), Box<dyn std::error::Error>> {
//! use mqtt_sec::rumqttc::{MqttOptions, QoS};
//! use mqtt_sec::{SecureClient, SecureEvent};
//!
//! let (client, mut connection) = SecureClient::builder(MqttOptions::new("dev-1", "broker.example", 1883))
//!     .signer(signer)
//!     .build_blocking(64)?;
//! client.publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, "21.5")?;
//! for event in connection.iter() {
//!     match event {
//!         Ok(SecureEvent::Message(message)) => println!("{}", message.topic()),
//!         Ok(_) => {}
//!         Err(error) => eprintln!("{error}"),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::error::{RequestError, SecureError};
use crate::event::SecureEvent;

/// Runs a future to completion on this thread. The client's requests only
/// wait for room in rumqttc's request queue, which any executor can do.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A blocking MQTT 3.1.1 secure client: each call returns once rumqttc
/// has queued the request. Clones share the connection.
#[derive(Debug, Clone)]
pub struct SecureClient(pub(crate) crate::SecureClient);

impl SecureClient {
    /// As [`crate::SecureClient::publish`].
    ///
    /// # Errors
    /// [`RequestError`]; when the guard or the signer refuses, nothing is sent.
    pub fn publish(
        &self,
        topic: &str,
        qos: rumqttc::QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), RequestError> {
        block_on(self.0.publish(topic, qos, retain, payload))
    }

    /// As [`crate::SecureClient::subscribe`].
    ///
    /// # Errors
    /// As [`SecureClient::publish`].
    pub fn subscribe(&self, filter: &str, qos: rumqttc::QoS) -> Result<(), RequestError> {
        block_on(self.0.subscribe(filter, qos))
    }

    /// As [`crate::SecureClient::unsubscribe`].
    ///
    /// # Errors
    /// [`RequestError::Client`].
    pub fn unsubscribe(&self, filter: &str) -> Result<(), RequestError> {
        block_on(self.0.unsubscribe(filter))
    }

    /// Queues a DISCONNECT.
    ///
    /// # Errors
    /// [`RequestError::Client`].
    pub fn disconnect(&self) -> Result<(), RequestError> {
        block_on(self.0.disconnect())
    }
}

/// A blocking MQTT 5 secure client.
#[derive(Debug, Clone)]
pub struct SecureClientV5(pub(crate) crate::v5::SecureClient);

impl SecureClientV5 {
    /// As [`crate::v5::SecureClient::publish`].
    ///
    /// # Errors
    /// [`RequestError`]; when the guard or the signer refuses, nothing is sent.
    pub fn publish(
        &self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), RequestError> {
        block_on(self.0.publish(topic, qos, retain, payload))
    }

    /// As [`crate::v5::SecureClient::subscribe`].
    ///
    /// # Errors
    /// As [`SecureClientV5::publish`].
    pub fn subscribe(
        &self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Result<(), RequestError> {
        block_on(self.0.subscribe(filter, qos))
    }

    /// As [`crate::v5::SecureClient::unsubscribe`].
    ///
    /// # Errors
    /// [`RequestError::ClientV5`].
    pub fn unsubscribe(&self, filter: &str) -> Result<(), RequestError> {
        block_on(self.0.unsubscribe(filter))
    }

    /// Queues a DISCONNECT.
    ///
    /// # Errors
    /// [`RequestError::ClientV5`].
    pub fn disconnect(&self) -> Result<(), RequestError> {
        block_on(self.0.disconnect())
    }
}

/// An event loop of either protocol version.
pub trait EventSource: private::Sealed {
    /// rumqttc's event of this version.
    type Event;
    #[doc(hidden)]
    fn next_event(&mut self)
    -> impl Future<Output = Result<SecureEvent<Self::Event>, SecureError>>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for crate::SecureEventLoop {}
    impl Sealed for crate::v5::SecureEventLoop {}
}

impl EventSource for crate::SecureEventLoop {
    type Event = rumqttc::Event;
    fn next_event(&mut self) -> impl Future<Output = Result<SecureEvent, SecureError>> {
        self.poll()
    }
}

impl EventSource for crate::v5::SecureEventLoop {
    type Event = rumqttc::v5::Event;
    fn next_event(&mut self) -> impl Future<Output = Result<crate::v5::SecureEvent, SecureError>> {
        self.poll()
    }
}

/// The receiving half of a blocking secure client: iterate it (or call
/// [`recv`](Self::recv)) to drive the connection, as rumqttc's
/// `Connection`. After an error the next call reconnects.
pub struct SecureConnection<L> {
    eventloop: L,
    runtime: tokio::runtime::Runtime,
}

impl<L> std::fmt::Debug for SecureConnection<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureConnection").finish_non_exhaustive()
    }
}

impl<L: EventSource> SecureConnection<L> {
    pub(crate) fn new(eventloop: L) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self { eventloop, runtime })
    }

    /// The next event, waiting as long as it takes.
    ///
    /// # Errors
    /// [`SecureError`], whose text says what to do.
    pub fn recv(&mut self) -> Result<SecureEvent<L::Event>, SecureError> {
        self.runtime.block_on(self.eventloop.next_event())
    }

    /// The next event, or `None` when none came within `timeout`.
    ///
    /// # Errors
    /// As [`SecureConnection::recv`].
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<SecureEvent<L::Event>, SecureError>> {
        // The timer is made inside the runtime: it needs its time driver.
        let eventloop = &mut self.eventloop;
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, eventloop.next_event()).await })
            .ok()
    }

    /// Every event, forever (errors included: iterating on reconnects).
    pub fn iter(&mut self) -> impl Iterator<Item = Result<SecureEvent<L::Event>, SecureError>> {
        std::iter::from_fn(|| Some(self.recv()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blocking call that has to wait (rumqttc's request queue full)
    /// sleeps until the connection's thread makes room, and then returns.
    #[test]
    fn block_on_returns_once_another_thread_wakes_the_future() {
        let (room, wait_for_room) = tokio::sync::oneshot::channel();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(block_on(wait_for_room));
        });
        std::thread::sleep(Duration::from_millis(50));
        room.send(7).unwrap();
        let woken = finished.recv_timeout(Duration::from_secs(5));
        assert_eq!(woken.expect("block_on never woke up").ok(), Some(7));
    }
}
