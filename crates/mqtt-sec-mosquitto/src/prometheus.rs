//! The counters in the Prometheus text exposition format (version 0.0.4),
//! served by a thread of ours on a loopback address: `GET /metrics`.
//!
//! The thread reads the counters' atomics and nothing of the broker's (its
//! functions are not thread-safe). Loopback only: the counters tell an
//! attacker which defences fire, so a scraper elsewhere goes through a
//! proxy the operator secures. Requests are served one at a time, each
//! bounded (8 KiB head, 2 s to send it), so a stalled client delays a
//! scrape by at most that and never the broker.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::counters::{Counters, LiveCounters};

/// Longest request head read.
const MAX_HEAD: u64 = 8 * 1024;

/// A running exporter; stopped when dropped.
#[derive(Debug)]
pub(crate) struct Exporter {
    /// The address asked for (port 0: any).
    configured: SocketAddr,
    /// The address bound.
    bound: SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl Exporter {
    /// Binds `address` (a loopback address: the configuration checked it)
    /// and serves `counters` from a thread.
    ///
    /// # Errors
    /// The address cannot be bound or the thread not spawned.
    pub(crate) fn start(
        address: SocketAddr,
        counters: Arc<LiveCounters>,
        sessions: Arc<std::sync::atomic::AtomicUsize>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let bound = listener.local_addr()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopped);
        std::thread::Builder::new()
            .name("mqtt-sec-metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        let gauge = sessions.load(Ordering::Acquire);
                        // A client that misbehaves only loses its answer.
                        let _ = serve(stream, counters.snapshot(), gauge);
                    }
                }
            })?;
        Ok(Self {
            configured: address,
            bound,
            stopped,
        })
    }

    /// The address the configuration asked for.
    pub(crate) fn configured(&self) -> SocketAddr {
        self.configured
    }

    /// The address listened on.
    pub(crate) fn bound(&self) -> SocketAddr {
        self.bound
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
        // Wakes the accept loop so that it sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.bound, Duration::from_secs(1));
    }
}

fn serve(stream: TcpStream, counters: Counters, sessions: usize) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(MAX_HEAD));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The rest of the head, up to its blank line; a blank request line is
    // a head already over. A head that reaches the bound first is refused.
    let mut line = String::new();
    let mut complete = request_line.trim().is_empty();
    while !complete {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        complete = line == "\r\n" || line == "\n";
    }
    let too_large = !complete && reader.get_ref().limit() == 0;
    let mut parts = request_line.split_ascii_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
        _ if too_large => (
            "431 Request Header Fields Too Large",
            "the request head is over 8 KiB\n".to_owned(),
        ),
        (Some("GET"), Some("/metrics")) => ("200 OK", exposition(&counters, sessions)),
        (Some("GET"), Some(_)) => ("404 Not Found", "not found: GET /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "GET /metrics only\n".to_owned()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    // A lingering close: what the client sent beyond the head is read (up
    // to a bound, within the read timeout) after our half-close, so that
    // closing with unread input does not reset the connection and lose
    // the answer.
    stream.shutdown(std::net::Shutdown::Write)?;
    std::io::copy(&mut (&stream).take(64 * 1024), &mut std::io::sink())?;
    Ok(())
}

/// The text exposition of `counters` and the session gauge.
pub(crate) fn exposition(counters: &Counters, sessions: usize) -> String {
    let mut text = String::new();
    for (name, help, value) in counters.named() {
        let _ = writeln!(text, "# HELP mqtt_sec_{name}_total {help}");
        let _ = writeln!(text, "# TYPE mqtt_sec_{name}_total counter");
        let _ = writeln!(text, "mqtt_sec_{name}_total {value}");
    }
    for (name, help, value) in counters.gauges() {
        let _ = writeln!(text, "# HELP mqtt_sec_{name} {help}");
        let _ = writeln!(text, "# TYPE mqtt_sec_{name} gauge");
        let _ = writeln!(text, "mqtt_sec_{name} {value}");
    }
    let _ = writeln!(
        text,
        "# HELP mqtt_sec_sessions Connections whose login set up an end (a token's or certificate's expiry)."
    );
    let _ = writeln!(text, "# TYPE mqtt_sec_sessions gauge");
    let _ = writeln!(text, "mqtt_sec_sessions {sessions}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn the_exposition_names_every_counter_once_with_its_type() {
        let counters = Counters {
            lockouts_started: 3,
            signatures_refused: 7,
            lockouts_active: 4,
            ..Counters::default()
        };
        let text = exposition(&counters, 2);
        assert!(text.contains(
            "# TYPE mqtt_sec_lockouts_started_total counter\nmqtt_sec_lockouts_started_total 3\n"
        ));
        assert!(text.contains("\nmqtt_sec_signatures_refused_total 7\n"));
        assert!(text.contains("# TYPE mqtt_sec_sessions gauge\nmqtt_sec_sessions 2\n"));
        assert!(text.contains(
            "# HELP mqtt_sec_lockouts_active User name and address pairs, and addresses, locked out now.\n\
             # TYPE mqtt_sec_lockouts_active gauge\nmqtt_sec_lockouts_active 4\n"
        ));
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 17);
        for sample in samples {
            let (name, value) = sample.split_once(' ').unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            value.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn serves_get_metrics_and_nothing_else_and_stops_when_dropped() {
        let counters = Arc::new(LiveCounters::default());
        counters.add(crate::counters::Count::LockoutStarted);
        let exporter = Exporter::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&counters),
            Arc::default(),
        )
        .unwrap();
        let address = exporter.bound();
        assert_ne!(address.port(), 0);
        let answer = get(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("text/plain; version=0.0.4"));
        assert!(answer.contains("\nmqtt_sec_lockouts_started_total 1\n"));
        counters.add(crate::counters::Count::LockoutStarted);
        let answer = get(address, "GET /metrics HTTP/1.0\r\n\r\n");
        assert!(
            answer.contains("\nmqtt_sec_lockouts_started_total 2\n"),
            "live values"
        );
        assert!(get(address, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(address, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(address, "\r\n").starts_with("HTTP/1.1 405"));
        // A head of 5,000 bytes is read; one over 8 KiB is refused.
        let header = |len: usize| {
            format!(
                "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(len)
            )
        };
        assert!(get(address, &header(5000)).starts_with("HTTP/1.1 200"));
        assert!(get(address, &header(9000)).starts_with("HTTP/1.1 431"));
        drop(exporter);
        std::thread::sleep(Duration::from_millis(100));
        assert!(TcpStream::connect(address).is_err(), "the port is closed");
    }

    #[test]
    fn a_stalled_client_delays_the_next_scrape_by_at_most_the_timeout() {
        let exporter = Exporter::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::default(),
            Arc::default(),
        )
        .unwrap();
        let _stalled = TcpStream::connect(exporter.bound()).unwrap();
        let started = std::time::Instant::now();
        let answer = get(exporter.bound(), "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
}
