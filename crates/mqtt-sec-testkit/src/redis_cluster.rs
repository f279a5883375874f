//! A real Redis Cluster of `redis-server` nodes on free loopback ports,
//! each in its own temporary directory, for the tests that show the stores
//! work on a cluster: never a system service, never shared between tests.

use std::time::{Duration, Instant};

use crate::tool::REDIS_CLI;
use crate::{Error, RedisServer, Result};

const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster of primaries only, the 16,384 slots spread over them,
/// killed when dropped.
///
/// ```no_run
/// use mqtt_sec_testkit::{RedisCluster, or_skip};
///
/// let Some(cluster) = or_skip(RedisCluster::start(3)) else { return Ok(()) };
/// assert_eq!(cluster.command(&["SET", "{a}k", "v"])?, "OK");
/// assert_eq!(cluster.urls().len(), 3);
/// # Ok::<(), mqtt_sec_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` nodes (at least 3, what `redis-cli --cluster
    /// create` asks for), gives them the slots, and waits until every node
    /// reports the cluster's state as ok.
    ///
    /// # Errors
    /// As [`crate::RedisServerBuilder::start`]; [`Error::ToolFailed`] when
    /// the cluster cannot be created; [`Error::Timeout`] when it does not
    /// form.
    pub fn start(primaries: usize) -> Result<Self> {
        if primaries < 3 {
            return Err(Error::InvalidRequest(
                "a Redis Cluster needs at least 3 primaries".into(),
            ));
        }
        let nodes = (0..primaries)
            .map(|_| RedisServer::builder().cluster_node().start())
            .collect::<Result<Vec<_>>>()?;
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}:{}", n.host(), n.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        REDIS_CLI.run(&args)?;
        let cluster = Self { nodes };
        cluster.wait_until_formed()?;
        Ok(cluster)
    }

    /// Every node's URL (`redis://127.0.0.1:PORT/`), the seeds a client
    /// is given.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to kill or restart one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Runs one command with `redis-cli -c` (which follows the cluster's
    /// redirections) through the first node; the reply as
    /// [`RedisServer::command`] gives it.
    ///
    /// # Errors
    /// As [`RedisServer::command`].
    pub fn command(&self, args: &[&str]) -> Result<String> {
        let port = self.nodes[0].port().to_string();
        let mut cli = vec!["-e", "-c", "-h", self.nodes[0].host(), "-p", &port];
        cli.extend(args);
        let output = REDIS_CLI.run(&cli)?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The node that holds `key`'s slot (`CLUSTER KEYSLOT`, then the node
    /// whose slot ranges in `CLUSTER NODES` hold it).
    ///
    /// # Errors
    /// As [`RedisServer::command`], and [`Error::ToolFailed`] for replies
    /// that do not parse.
    pub fn node_of(&self, key: &str) -> Result<&RedisServer> {
        let unparsable = |what: String| Error::ToolFailed {
            tool: "redis-cli",
            status: "0".into(),
            stderr: what,
        };
        let slot: u16 = self.nodes[0]
            .command(&["CLUSTER", "KEYSLOT", key])?
            .parse()
            .map_err(|_| unparsable(format!("CLUSTER KEYSLOT {key}")))?;
        let table = self.nodes[0].command(&["CLUSTER", "NODES"])?;
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(port) = fields
                .get(1)
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            let holds = fields.iter().skip(8).any(|range| {
                let mut ends = range.splitn(2, '-').map(|e| e.parse::<u16>().ok());
                match (ends.next().flatten(), ends.next()) {
                    (Some(first), Some(Some(last))) => (first..=last).contains(&slot),
                    (Some(only), None) => only == slot,
                    _ => false,
                }
            });
            if holds {
                return self
                    .nodes
                    .iter()
                    .find(|n| n.port() == port)
                    .ok_or_else(|| unparsable(format!("no node on port {port}")));
            }
        }
        Err(unparsable(format!("no node holds slot {slot}")))
    }

    /// Whether `key` exists on the node that holds its slot, asked there
    /// without redirection: a key the client wrote elsewhere is not found.
    ///
    /// # Errors
    /// As [`RedisCluster::node_of`].
    pub fn holds(&self, key: &str) -> Result<bool> {
        Ok(self.node_of(key)?.command(&["EXISTS", key])? == "1")
    }

    fn wait_until_formed(&self) -> Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let formed = self.nodes.iter().all(|node| {
                node.command(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if formed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "the Redis Cluster to form".into(),
                    log: self.nodes.iter().map(RedisServer::log).collect(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::or_skip;

    #[test]
    fn a_cluster_forms_and_spreads_the_slots() {
        let Some(cluster) = or_skip(RedisCluster::start(3)) else {
            return;
        };
        for key in ["{a}", "{b}", "{c}", "{d}", "{e}"] {
            assert_eq!(cluster.command(&["SET", key, "v"]).unwrap(), "OK");
            // The node said to hold it has it, without a redirection.
            assert_eq!(
                cluster
                    .node_of(key)
                    .unwrap()
                    .command(&["GET", key])
                    .unwrap(),
                "v"
            );
        }
        let holders: std::collections::HashSet<u16> = ["{a}", "{b}", "{c}", "{d}", "{e}"]
            .iter()
            .map(|k| cluster.node_of(k).unwrap().port())
            .collect();
        assert!(holders.len() > 1, "keys on several nodes");
        assert!(RedisCluster::start(2).is_err());
    }
}
