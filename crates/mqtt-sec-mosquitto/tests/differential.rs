//! Differential test: the same random acl files loaded by mosquitto's own
//! `acl_file` in one broker and by the plugin in another; the same clients
//! publish and receive on both, and every decision observed through the
//! two real brokers must agree. A third broker runs the plugin with
//! `subscribe = "containment"`, whose SUBACKs must match mqtt-sec-acl's
//! reference decision.
//!
//! `MQTT_SEC_PLUGIN_DIFF_FILES` sets how many acl files (default 20);
//! `MQTT_SEC_PLUGIN_DIFF_SEED` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_acl::{Action, Principal, SubscribeCheck, mosquitto};
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_testkit::acl_differential::{
    ADMIN, DecisionClient, Rng, USERNAMES, random_acl, random_principals, random_topics, run_size,
};
use mqtt_sec_testkit::{Mosquitto, or_skip};
use support::Files;

const PASSWORD: &str = "pw";

/// A plugin configuration accepting every generated user with PASSWORD,
/// anonymous clients, and `acl` as the ACL.
fn plugin_files(acl: &str, subscribe: &str) -> Files {
    let files = Files::new();
    let mut passwords = PasswordFile::new();
    let fast = HashParams::with_iterations(std::num::NonZeroU32::new(10).unwrap());
    for user in USERNAMES.iter().chain([&ADMIN]) {
        passwords
            .set(user, &SecretString::from(PASSWORD.to_owned()), fast)
            .unwrap();
    }
    files.write("passwd", &passwords.to_string());
    files.write("acl", acl);
    files.write(
        "mqtt-sec.toml",
        &format!(
            "allow_anonymous = true\n[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\
             [acl]\nacl_file = \"acl\"\nsubscribe = \"{subscribe}\"\n"
        ),
    );
    files
}

#[tokio::test]
async fn the_plugin_decides_as_mosquittos_acl_file() {
    let (files, seed) = run_size("MQTT_SEC_PLUGIN_DIFF", 0x706c_7567);
    let mut rng = Rng(seed);
    let (mut decisions, mut allowed, mut subscribes, mut granted_subscribes) =
        (0usize, 0usize, 0usize, 0usize);
    let mut differences = Vec::new();
    for file in 0..files {
        let mut filters = Vec::new();
        let acl = random_acl(&mut rng, &mut filters);
        let Some(theirs) = or_skip(
            Mosquitto::builder()
                .plain_listener()
                .allow_anonymous(true)
                .acl_file(&acl)
                .start(),
        ) else {
            return;
        };
        let ours_files = plugin_files(&acl, "grant-all");
        let ours = support::start(&ours_files).expect("mosquitto ran for the first broker");
        let strict_files = plugin_files(&acl, "containment");
        let strict = support::start(&strict_files).expect("mosquitto ran for the first broker");
        let ports = [theirs.plain_port().unwrap(), ours.plain_port().unwrap()];

        let principals = random_principals(&mut rng);
        let topics = random_topics(&mut rng, &filters, &principals);
        let login = |user: Option<&'static str>| user.map(|u| (u, PASSWORD));
        let mut admins = Vec::new();
        let mut clients: Vec<Vec<DecisionClient>> = Vec::new();
        for port in ports {
            admins.push(DecisionClient::connect(port, "admin", login(Some(ADMIN))).await);
            let mut on_broker = Vec::new();
            for (id, user) in &principals {
                let mut client = DecisionClient::connect(port, id, login(*user)).await;
                assert!(
                    client.subscribe("#").await,
                    "grant-all grants every SUBSCRIBE"
                );
                for topic in &topics {
                    assert!(client.subscribe(topic).await);
                }
                on_broker.push(client);
            }
            clients.push(on_broker);
        }
        let mut differ = |what: String, theirs: bool, ours: bool| {
            decisions += 1;
            allowed += usize::from(theirs);
            if theirs != ours {
                differences.push(format!(
                    "file {file}: {what}: mosquitto {theirs}, plugin {ours}\n{acl}"
                ));
            }
        };
        for topic in &topics {
            for (i, principal) in principals.iter().enumerate() {
                let theirs = clients[0][i].publish(topic).await;
                let ours = clients[1][i].publish(topic).await;
                differ(format!("{principal:?} publish {topic:?}"), theirs, ours);
            }
        }
        for broker in &mut clients {
            for client in broker.iter_mut() {
                client.sync().await;
            }
        }
        for topic in &topics {
            let sent = [
                admins[0].publish(topic).await,
                admins[1].publish(topic).await,
            ];
            assert_eq!(sent[0], sent[1], "admin publish {topic:?}\n{acl}");
            if !sent[0] {
                continue;
            }
            for (i, principal) in principals.iter().enumerate() {
                let theirs = clients[0][i].sync().await.iter().any(|t| t == topic);
                let ours = clients[1][i].sync().await.iter().any(|t| t == topic);
                differ(format!("{principal:?} receive {topic:?}"), theirs, ours);
            }
        }

        // Containment: the SUBACKs of the strict broker against the reference.
        let reference = mosquitto::parse_acl_file(&acl)
            .unwrap()
            .subscribe_check(SubscribeCheck::Containment);
        let port = strict.plain_port().unwrap();
        for (id, user) in &principals {
            let mut client = DecisionClient::connect(port, id, login(*user)).await;
            let who = match user {
                Some(u) => Principal::new(*id).with_username(*u),
                None => Principal::new(*id),
            };
            for filter in std::iter::once("#")
                .chain(filters.iter().map(String::as_str))
                .chain(topics.iter().map(String::as_str))
            {
                let expected = reference
                    .check(&who, Action::Subscribe, filter)
                    .is_allowed();
                let granted = client.subscribe(filter).await;
                subscribes += 1;
                granted_subscribes += usize::from(granted);
                if granted != expected {
                    differences.push(format!(
                        "file {file}: {id:?} {user:?} subscribe {filter:?} under containment: reference {expected}, plugin {granted}\n{acl}"
                    ));
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(
        decisions >= 1000 || files < 20,
        "only {decisions} decisions"
    );
    assert!(
        allowed * 12 >= decisions && allowed * 12 <= decisions * 11,
        "{allowed} of {decisions} allowed: both outcomes must be well represented"
    );
    assert!(
        granted_subscribes * 20 >= subscribes && granted_subscribes < subscribes,
        "{granted_subscribes} of {subscribes} subscriptions granted under containment"
    );
    eprintln!(
        "{decisions} publish and receive decisions ({allowed} allowed) agreed between mosquitto's acl_file and the plugin, and {subscribes} containment SUBACKs ({granted_subscribes} granted) with the reference, over {files} acl files (seed {seed})"
    );
}
