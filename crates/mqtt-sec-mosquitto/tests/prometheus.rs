//! The Prometheus exporter through the plugin's start and reloads: it
//! listens where configured, moves with the configuration (the new
//! address serving before the old one closes), stops when the table goes,
//! and a reload whose address cannot be bound is refused whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

mod plugin_setup;

fn scrape(at: SocketAddr) -> String {
    let mut stream = TcpStream::connect(at).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_exporter_follows_the_configuration() {
    let s = plugin_setup::setup("[monitoring]\nprometheus_address = \"127.0.0.1:0\"\n");
    let first = s.plugin.metrics_address().unwrap();
    assert!(scrape(first).contains("mqtt_sec_logins_allowed_total 0"));
    assert!(s.lines.contains(&format!(
        "serving Prometheus metrics on http://{first}/metrics"
    )));
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // An unchanged address keeps the running exporter (same port).
    s.plugin.reload(&[]).unwrap();
    assert_eq!(s.plugin.metrics_address(), Some(first));
    // Moved: the new address serves, the old one is closed.
    std::fs::write(&config, text.replace("127.0.0.1:0", "127.0.0.2:0")).unwrap();
    s.plugin.reload(&[]).unwrap();
    let second = s.plugin.metrics_address().unwrap();
    assert_eq!(second.ip().to_string(), "127.0.0.2");
    assert!(scrape(second).starts_with("HTTP/1.1 200"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(TcpStream::connect(first).is_err());
    // A port already taken: the reload is refused and the exporter stays.
    let taken = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let taken_at = taken.local_addr().unwrap();
    std::fs::write(&config, text.replace("127.0.0.1:0", &taken_at.to_string())).unwrap();
    let error = s.plugin.reload(&[]).unwrap_err().to_string();
    assert!(
        error.contains("the Prometheus exporter cannot listen on"),
        "{error}"
    );
    assert_eq!(s.plugin.metrics_address(), Some(second));
    assert!(scrape(second).starts_with("HTTP/1.1 200"));
    // Removed: no exporter.
    std::fs::write(
        &config,
        text.replace("[monitoring]\nprometheus_address = \"127.0.0.1:0\"\n", ""),
    )
    .unwrap();
    s.plugin.reload(&[]).unwrap();
    assert_eq!(s.plugin.metrics_address(), None);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(TcpStream::connect(second).is_err());
}
