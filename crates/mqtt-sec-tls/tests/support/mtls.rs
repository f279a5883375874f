//! One rumqttc connection attempt over a `ClientTls` to mosquitto's mTLS
//! listener.

use std::time::Duration;

use mqtt_sec_testkit::Mosquitto;
use mqtt_sec_tls::ClientTls;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, TlsConfiguration, Transport};

/// How long a connection attempt, or a broker log line, may take.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The CONNACK of one connection attempt, or why there was none.
pub(crate) async fn connect(
    broker: &Mosquitto,
    tls: &ClientTls,
    client_id: &str,
) -> Result<(), String> {
    let mut options = MqttOptions::new(client_id, broker.host(), broker.mtls_port().unwrap());
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls.config(),
    )));
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await
    .expect("an answer in time")
}
