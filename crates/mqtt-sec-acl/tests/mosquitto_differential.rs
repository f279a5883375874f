//! Differential test: random acl files, identities and topics; for each case
//! a real mosquitto decides (publish: the MQTT v5 PUBACK reason code;
//! subscribe: the SUBACK reason code; receive: whether a subscriber to `#`
//! and to the topic itself gets a message a privileged client published)
//! and the loader must decide the same.
//!
//! `MQTT_SEC_ACL_DIFF_FILES` sets how many acl files (default 20, each
//! giving about 100 cases); `MQTT_SEC_ACL_DIFF_SEED` replays a run.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_acl::{Action, PolicyIndex, Principal, mosquitto};
use mqtt_sec_testkit::acl_differential::{
    ADMIN, DecisionClient, Rng, random_acl, random_principals, random_topics, run_size,
};
use mqtt_sec_testkit::{Mosquitto, or_skip};

#[tokio::test]
async fn loader_decides_as_mosquitto_does() {
    let (files, seed) = run_size("MQTT_SEC_ACL_DIFF", 0x6d71_7474);
    let mut rng = Rng(seed);
    let mut cases = 0;
    let mut allowed_cases = 0;
    let mut differences = Vec::new();
    for file in 0..files {
        let mut filters = Vec::new();
        let acl = random_acl(&mut rng, &mut filters);
        let policy = mosquitto::parse_acl_file(&acl).unwrap_or_else(|e| panic!("{e}\n{acl}"));
        let index = PolicyIndex::compile(policy.clone());
        let builder = Mosquitto::builder()
            .plain_listener()
            .allow_anonymous(true)
            .acl_file(&acl);
        let Some(broker) = or_skip(builder.start()) else {
            return;
        };
        let port = broker.plain_port().unwrap();

        // Four clients with distinct client ids and random user names.
        let principals = random_principals(&mut rng);
        let topics = random_topics(&mut rng, &filters, &principals);
        let mut admin = DecisionClient::connect(port, "admin", Some((ADMIN, ""))).await;

        let mut compare = |principal: &(&str, Option<&str>),
                           action: Action,
                           topic: &str,
                           mosquitto: bool| {
            let who = match principal.1 {
                Some(u) => Principal::new(principal.0).with_username(u),
                None => Principal::new(principal.0),
            };
            let ours = policy.check(&who, action, topic);
            let indexed = index.check(&who, action, topic);
            assert_eq!(
                indexed, ours,
                "index and policy differ for {who:?} {action} {topic:?}\n{acl}"
            );
            cases += 1;
            allowed_cases += usize::from(mosquitto);
            if ours.is_allowed() != mosquitto {
                differences.push(format!(
                    "file {file}: client {:?} user {:?} {action} {topic:?}: mosquitto {}, we {ours}\n{acl}",
                    principal.0,
                    principal.1,
                    if mosquitto { "allowed" } else { "denied" }
                ));
            }
        };

        // mosquitto grants every SUBSCRIBE and checks each delivery.
        let mut clients = Vec::new();
        for principal in &principals {
            let mut client =
                DecisionClient::connect(port, principal.0, principal.1.map(|u| (u, ""))).await;
            for filter in std::iter::once("#").chain(topics.iter().map(String::as_str)) {
                let granted = client.subscribe(filter).await;
                compare(principal, Action::Subscribe, filter, granted);
            }
            clients.push(client);
        }
        for topic in &topics {
            for (principal, client) in principals.iter().zip(clients.iter_mut()) {
                let allowed = client.publish(topic).await;
                compare(principal, Action::Publish, topic, allowed);
            }
        }
        for client in &mut clients {
            client.sync().await;
        }
        for topic in &topics {
            if !admin.publish(topic).await {
                continue; // mosquitto refuses every client publish here ($SYS): nothing to receive
            }
            for (principal, client) in principals.iter().zip(clients.iter_mut()) {
                let received = client.sync().await.iter().any(|t| t == topic);
                compare(principal, Action::Receive, topic, received);
            }
        }
        drop(broker);
    }
    assert!(
        differences.is_empty(),
        "{} of {cases} cases differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(cases >= 1000 || files < 20, "only {cases} cases");
    // Both outcomes must be well represented, or the comparison proves little.
    assert!(
        allowed_cases * 12 >= cases && allowed_cases * 12 <= cases * 11,
        "{allowed_cases} of {cases} allowed"
    );
    eprintln!(
        "{cases} cases ({allowed_cases} allowed) agreed with mosquitto over {files} acl files (seed {seed})"
    );
}
