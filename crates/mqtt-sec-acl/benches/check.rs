//! Check cost of the compiled index against a linear scan with
//! `rumqttc::matches`, at 10, 1,000 and 100,000 rules, plus the memory per
//! rule and the compile time for 100,000 rules.
//!
//! `cargo bench -p mqtt-sec-acl --bench check`; the figures go in the
//! crate README.

// Benchmark setup: a failed unwrap is a broken benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mqtt_sec_acl::{Action, Actions, FilterPattern, Policy, PolicyIndex, Principal, Rule, Subject};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// A multi-tenant rule set: one rule per device user, below its tenant, plus
/// two rules for everyone (a placeholder rule and a deny).
fn rules(count: usize) -> Vec<Rule> {
    let mut rules = vec![
        Rule::allow(
            Subject::Any,
            Actions::RECEIVE,
            FilterPattern::parse("broadcast/${clientid}/#").unwrap(),
        ),
        Rule::deny(
            Subject::Any,
            Actions::ALL,
            FilterPattern::parse("tenants/+/devices/+/firmware/#").unwrap(),
        ),
    ];
    for i in 0..count.saturating_sub(2) {
        let filter = format!("tenants/t{}/devices/d{i}/#", i % 100);
        rules.push(Rule::allow(
            Subject::Username(format!("user{i}")),
            Actions::PUBLISH,
            FilterPattern::parse(&filter).unwrap(),
        ));
    }
    rules
}

/// Naive baseline 1: every rule in turn, user name compared first, then
/// rumqttc's matcher with the placeholder filled in by string replacement.
fn linear_scan(raw: &[(Option<String>, String, bool)], who: &Principal, topic: &str) -> bool {
    let mut allowed = false;
    for (user, filter, allow) in raw {
        if user.as_deref().is_some_and(|u| Some(u) != who.username()) {
            continue;
        }
        let filter = filter.replace("${clientid}", who.client_id());
        if rumqttc::matches(topic, &filter) {
            if !allow {
                return false;
            }
            allowed = true;
        }
    }
    allowed
}

/// Naive baseline 2, as mosquitto's pattern loop works: every rule's filter
/// is built with the identity put in (an allocation per rule), matched with
/// rumqttc, and only then is the rule's subject looked at.
fn linear_scan_match_first(
    raw: &[(Option<String>, String, bool)],
    who: &Principal,
    topic: &str,
) -> bool {
    let mut allowed = false;
    for (user, filter, allow) in raw {
        let filter = filter.replace("${clientid}", who.client_id());
        if rumqttc::matches(topic, &filter)
            && user.as_deref().is_none_or(|u| Some(u) == who.username())
        {
            if !allow {
                return false;
            }
            allowed = true;
        }
    }
    allowed
}

fn raw_rules(count: usize) -> Vec<(Option<String>, String, bool)> {
    let mut raw = vec![
        (None, "broadcast/${clientid}/#".to_owned(), true),
        (None, "tenants/+/devices/+/firmware/#".to_owned(), false),
    ];
    for i in 0..count.saturating_sub(2) {
        raw.push((
            Some(format!("user{i}")),
            format!("tenants/t{}/devices/d{i}/#", i % 100),
            true,
        ));
    }
    raw
}

fn request(count: usize) -> (Principal, String) {
    let i = (count - 2) / 2;
    (
        Principal::new(format!("dev-{i}")).with_username(format!("user{i}")),
        format!("tenants/t{}/devices/d{i}/telemetry/temp", i % 100),
    )
}

fn bench_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for count in SIZES {
        let index = PolicyIndex::compile(Policy::new(rules(count)).unwrap());
        let raw = raw_rules(count);
        let (who, topic) = request(count);
        assert!(index.check(&who, Action::Publish, &topic).is_allowed());
        assert!(linear_scan(&raw, &who, &topic));
        assert!(linear_scan_match_first(&raw, &who, &topic));
        group.bench_with_input(BenchmarkId::new("index", count), &count, |b, _| {
            b.iter(|| {
                index
                    .check(black_box(&who), Action::Publish, black_box(&topic))
                    .is_allowed()
            })
        });
        if count == 100_000 {
            group.sample_size(10);
        }
        group.bench_with_input(
            BenchmarkId::new("linear_subject_first", count),
            &count,
            |b, _| b.iter(|| linear_scan(black_box(&raw), black_box(&who), black_box(&topic))),
        );
        group.bench_with_input(
            BenchmarkId::new("linear_match_first", count),
            &count,
            |b, _| {
                b.iter(|| {
                    linear_scan_match_first(black_box(&raw), black_box(&who), black_box(&topic))
                })
            },
        );
    }
    group.finish();
}

/// SUBSCRIBE under containment: the index looks the client's own rules up
/// by name; `Policy::check` (what the index did before) scans every rule.
fn bench_subscribe(c: &mut Criterion) {
    let mut group = c.benchmark_group("subscribe");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for count in SIZES {
        let subscribe_rules: Vec<Rule> = rules(count)
            .into_iter()
            .map(|rule| match rule.subject() {
                Subject::Username(_) => Rule::new(
                    rule.effect(),
                    rule.subject().clone(),
                    Actions::SUBSCRIBE,
                    rule.scope().clone(),
                ),
                _ => rule,
            })
            .collect();
        let policy = Policy::new(subscribe_rules).unwrap();
        let index = PolicyIndex::compile(policy.clone());
        let (who, _) = request(count);
        let i = (count - 2) / 2;
        let filter = format!("tenants/t{}/devices/d{i}/telemetry/#", i % 100);
        assert!(index.check(&who, Action::Subscribe, &filter).is_allowed());
        assert!(policy.check(&who, Action::Subscribe, &filter).is_allowed());
        if count == 100_000 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::new("index", count), &count, |b, _| {
            b.iter(|| {
                index
                    .check(black_box(&who), Action::Subscribe, black_box(&filter))
                    .is_allowed()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("policy (linear)", count),
            &count,
            |b, _| {
                b.iter(|| {
                    policy
                        .check(black_box(&who), Action::Subscribe, black_box(&filter))
                        .is_allowed()
                })
            },
        );
    }
    group.finish();
}

fn bench_compile(c: &mut Criterion) {
    let rules = rules(100_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("100000_rules", |b| {
        b.iter(|| PolicyIndex::compile(Policy::new(black_box(rules.clone())).unwrap()))
    });
    group.finish();

    // Memory: what the rules take, and what compiling adds, net of frees.
    let region = Region::new(GLOBAL);
    let built = rules.clone();
    let policy_bytes = region.change().bytes_allocated - region.change().bytes_deallocated;
    let region = Region::new(GLOBAL);
    let start = Instant::now();
    let index = PolicyIndex::compile(Policy::new(built).unwrap());
    let elapsed = start.elapsed();
    let stats = region.change();
    let index_bytes = stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated);
    // The cloned Vec<Rule> buffer is itself a heap allocation, so the
    // rules' figure already includes each Rule's inline size.
    println!(
        "memory for 100000 rules: the rules {:.0} B/rule, the index on top {:.0} B/rule; one compile took {:?}",
        policy_bytes as f64 / 1e5,
        index_bytes as f64 / 1e5,
        elapsed
    );
    black_box(index);
}

criterion_group!(benches, bench_check, bench_subscribe, bench_compile);
criterion_main!(benches);
