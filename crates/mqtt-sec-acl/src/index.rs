//! A compiled [`Policy`]: a trie over filter levels, so that deciding a
//! PUBLISH or a delivery costs time in the topic's depth, not in the number
//! of rules.
//!
//! - Literal levels are hash lookups; `+` is one edge; `#` rules sit on the
//!   node where the `#` stands and match everything below it (and the node
//!   itself, as `sport/#` matches `sport`).
//! - Levels with placeholders are edges compared against the topic with the
//!   client's identity put in, byte by byte, without allocating; a mosquitto
//!   identity containing `/` may span several levels, as in mosquitto.
//! - Rules on a node are bucketed by subject: rules for one user name, client
//!   id or group are found by a hash lookup of an interned name, so 100,000
//!   users with a rule each on the same filter cost no more than one.
//! - Rules without a filter ([`Scope::AllTopics`], [`Scope::Prefix`],
//!   [`Scope::Exact`]) are few and checked on every request.
//!
//! SUBSCRIBE requests (under [`crate::SubscribeCheck::Containment`]) are
//! decided from the rules that can apply to the client: those of its user
//! name, client id and groups, found by hash lookup, and those for every
//! client, checked in turn (the containment check does not follow a single
//! trie path). 100,000 per-user rules cost a subscription no more than the
//! client's own.

use std::collections::HashMap;

/// foldhash, seeded per process: several times faster than SipHash on the
/// short keys here. The tables hold only what the policy's author wrote;
/// clients can only look keys up, never insert them.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use crate::pattern::{LevelSpec, PatternPart, match_pattern_level};
use crate::policy::{CombiningMode, Decision, Policy, Reason, Target, audit_denial};
use crate::principal::Principal;
use crate::rule::{Action, Effect, Scope, Subject};

type NodeId = u32;
type RuleId = u32;
/// Placeholder levels leaving a node, and where they lead.
type PatternEdges = Vec<(Vec<PatternPart>, NodeId)>;

/// Which rules of a node: those ending there, or those whose `#` stands there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Slot {
    End,
    Hash,
}

/// The keyed subjects, by interned name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Username(u32),
    ClientId(u32),
    Group(u32),
}

/// A keyed subject before interning.
enum NamedKey {
    Username(String),
    ClientId(String),
    Group(String),
}

impl NamedKey {
    fn intern(self, names: &mut Map<Box<str>, u32>) -> Key {
        let mut id_of = |name: String| -> u32 {
            let next = u32::try_from(names.len()).unwrap_or(u32::MAX);
            *names.entry(name.into_boxed_str()).or_insert(next)
        };
        match self {
            Self::Username(name) => Key::Username(id_of(name)),
            Self::ClientId(name) => Key::ClientId(id_of(name)),
            Self::Group(name) => Key::Group(id_of(name)),
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    literal: Map<Box<str>, NodeId>,
    plus: Option<NodeId>,
    /// Placeholder levels: rare, so boxed to keep every node small.
    patterns: Option<Box<PatternEdges>>,
    /// Rules whose filter ends here, and rules whose `#` stands here.
    end: Bucket,
    hash: Bucket,
}

/// The rules of one node slot. Small buckets are checked rule by rule; a
/// bucket with more than [`BUCKET_SCAN_LIMIT`] rules keeps only those for
/// any client here and moves the rest to the keyed map.
#[derive(Debug, Default)]
struct Bucket {
    rules: Box<[RuleId]>,
    keyed: bool,
}

/// Above this many rules on one node slot, rules for a named user, client
/// or group are found by hash lookup instead of being compared one by one.
const BUCKET_SCAN_LIMIT: usize = 8;

/// A [`Policy`] compiled for fast checks of topic names. Decisions are
/// exactly those of [`Policy::check`].
///
/// ```
/// use mqtt_sec_acl::{Action, Principal, PolicyIndex, mosquitto};
/// let policy = mosquitto::parse_acl_file("pattern readwrite devices/%c/#\n")?;
/// let index = PolicyIndex::compile(policy);
/// let device = Principal::new("dev-1");
/// assert!(index.check(&device, Action::Publish, "devices/dev-1/temp").is_allowed());
/// assert!(!index.check(&device, Action::Publish, "devices/dev-2/temp").is_allowed());
/// # Ok::<(), mqtt_sec_acl::PolicyError>(())
/// ```
#[derive(Debug)]
pub struct PolicyIndex {
    policy: Policy,
    nodes: Vec<Node>,
    keyed: Map<(NodeId, Slot, Key), Vec<RuleId>>,
    names: Map<Box<str>, u32>,
    unscoped: Vec<RuleId>,
    /// Subscribe rules for a named user, client id or group, by name.
    subscribe_keyed: Map<Key, Vec<RuleId>>,
    /// Subscribe rules for every client, anonymous ones or wildcard identities.
    subscribe_other: Vec<RuleId>,
}

/// The best rule found so far under the policy's combining mode.
#[derive(Debug, Clone, Copy, Default)]
struct Best {
    first: Option<RuleId>,
    first_deny: Option<RuleId>,
    first_allow: Option<RuleId>,
}

impl Best {
    fn offer(&mut self, rule: RuleId, effect: Effect) {
        let min = |slot: &mut Option<RuleId>| *slot = Some(slot.map_or(rule, |r| r.min(rule)));
        min(&mut self.first);
        match effect {
            Effect::Deny => min(&mut self.first_deny),
            Effect::Allow => min(&mut self.first_allow),
        }
    }

    fn decide(self, mode: CombiningMode) -> Option<RuleId> {
        match mode {
            CombiningMode::FirstMatch => self.first,
            CombiningMode::DenyOverrides => self.first_deny.or(self.first_allow),
        }
    }
}

/// The walk's pending nodes: the first [`Pending::INLINE`] on the stack
/// frame, more (a topic that matches many wildcard paths at once) on the
/// heap. Most checks hold one or two at a time, so most allocate nothing.
struct Pending<'t> {
    inline: [(NodeId, Option<&'t str>); Pending::INLINE],
    len: usize,
    spilled: Vec<(NodeId, Option<&'t str>)>,
}

impl<'t> Pending<'t> {
    const INLINE: usize = 8;

    fn new(first: (NodeId, Option<&'t str>)) -> Self {
        let mut inline = [(0, None); Self::INLINE];
        inline[0] = first;
        Self {
            inline,
            len: 1,
            spilled: Vec::new(),
        }
    }

    /// Pushes inline while there is room. The heap holds items only while
    /// the inline part is full (pops drain the heap first), so the order
    /// stays last in, first out.
    fn push(&mut self, item: (NodeId, Option<&'t str>)) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = item;
                self.len += 1;
            }
            None => self.spilled.push(item),
        }
    }

    fn pop(&mut self) -> Option<(NodeId, Option<&'t str>)> {
        if let Some(item) = self.spilled.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline.get(self.len).copied()
    }
}

/// One check's inputs, resolved once.
struct Query<'a> {
    principal: &'a Principal,
    action: Action,
    username: Option<u32>,
    client_id: Option<u32>,
    dollar: bool,
}

impl PolicyIndex {
    /// Compiles a policy. Compiling is linear in the total length of the
    /// rules' filters.
    pub fn compile(policy: Policy) -> Self {
        let mut index = Self {
            policy,
            nodes: vec![Node::default()],
            keyed: Map::default(),
            names: Map::default(),
            unscoped: Vec::new(),
            subscribe_keyed: Map::default(),
            subscribe_other: Vec::new(),
        };
        index.index_subscribe_rules();
        let mut placed = Vec::new();
        for rule_id in 0..index.policy.rules().len() {
            if let Some(place) = index.insert(rule_id) {
                placed.push(place);
            }
        }
        placed.sort_unstable();
        for group in placed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            index.fill_bucket(group);
        }
        index.nodes.shrink_to_fit();
        index.keyed.shrink_to_fit();
        index.names.shrink_to_fit();
        index
    }

    /// Files every rule that may decide a SUBSCRIBE under its subject.
    fn index_subscribe_rules(&mut self) {
        for (rule_id, rule) in self.policy.rules().iter().enumerate() {
            // Only a saving: `decide_among` checks the action again, so
            // keeping these rules would decide the same (an equivalent
            // mutant for cargo-mutants).
            if !rule.actions().contains(Action::Subscribe) {
                continue;
            }
            let rule_id = RuleId::try_from(rule_id).unwrap_or(RuleId::MAX);
            let key = match rule.subject() {
                Subject::Username(name) => NamedKey::Username(name.clone()),
                Subject::ClientId(name) => NamedKey::ClientId(name.clone()),
                Subject::Group(name) => NamedKey::Group(name.clone()),
                Subject::Any | Subject::Anonymous | Subject::WildcardIdentity => {
                    self.subscribe_other.push(rule_id);
                    continue;
                }
            };
            let key = key.intern(&mut self.names);
            self.subscribe_keyed.entry(key).or_default().push(rule_id);
        }
    }

    /// A SUBSCRIBE under containment: the client's own rules and those for
    /// every client, in the policy's order.
    fn decide_subscribe(&self, principal: &Principal, filter: &str) -> Decision<'_> {
        let target = match self.policy.validate(Action::Subscribe, filter) {
            Ok(target) => target,
            Err(reason) => return Decision::deny(reason),
        };
        let name = |name: &str| self.names.get(name).copied();
        let keys = principal
            .username()
            .and_then(name)
            .map(Key::Username)
            .into_iter()
            .chain(name(principal.client_id()).map(Key::ClientId))
            .chain(
                principal
                    .groups()
                    .iter()
                    .filter_map(|g| name(g))
                    .map(Key::Group),
            );
        let mut candidates = self.subscribe_other.clone();
        for key in keys {
            if let Some(rules) = self.subscribe_keyed.get(&key) {
                candidates.extend_from_slice(rules);
            }
        }
        // Each rule is filed under one subject, so there are no duplicates;
        // the order is the policy's, which FirstMatch depends on.
        candidates.sort_unstable();
        self.policy.decide_among(
            principal,
            Action::Subscribe,
            target,
            candidates.into_iter().map(|rule| rule as usize),
        )
    }

    /// Stores the rules of one node slot.
    fn fill_bucket(&mut self, group: &[(NodeId, Slot, RuleId)]) {
        let (node, slot) = (group[0].0, group[0].1);
        let mut scanned = Vec::new();
        let mut keyed = false;
        for &(_, _, rule_id) in group {
            let key = match self.policy.rules()[rule_id as usize].subject() {
                _ if group.len() <= BUCKET_SCAN_LIMIT => None,
                Subject::Username(name) => Some(NamedKey::Username(name.clone())),
                Subject::ClientId(name) => Some(NamedKey::ClientId(name.clone())),
                Subject::Group(name) => Some(NamedKey::Group(name.clone())),
                _ => None,
            };
            match key {
                None => scanned.push(rule_id),
                Some(key) => {
                    keyed = true;
                    let key = key.intern(&mut self.names);
                    self.keyed
                        .entry((node, slot, key))
                        .or_default()
                        .push(rule_id);
                }
            }
        }
        let bucket = Bucket {
            rules: scanned.into_boxed_slice(),
            keyed,
        };
        let target = &mut self.nodes[node as usize];
        match slot {
            Slot::End => target.end = bucket,
            Slot::Hash => target.hash = bucket,
        }
    }

    /// The compiled policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides as [`Policy::check`] does, with the same audit events.
    pub fn check(&self, principal: &Principal, action: Action, topic: &str) -> Decision<'_> {
        let decision = self.decide(principal, action, topic);
        if !decision.is_allowed() {
            audit_denial(principal, action, topic, &decision);
        }
        decision
    }

    fn decide(&self, principal: &Principal, action: Action, topic: &str) -> Decision<'_> {
        if action == Action::Subscribe {
            if self.policy.subscribe_mode() == crate::SubscribeCheck::GrantAll {
                return self.policy.check_quietly(principal, action, topic);
            }
            return self.decide_subscribe(principal, topic);
        }
        let topic = match self.policy.validate(action, topic) {
            Ok(Target::Name(topic)) => topic,
            Ok(Target::Filter(_) | Target::Shared { .. }) => {
                return self.policy.check_quietly(principal, action, topic);
            }
            Err(reason) => return Decision::deny(reason),
        };
        // Interned ids are read only by keyed buckets: without any, skip
        // the two lookups (a saving only; the decision is the same).
        let name = |name: &str| {
            (!self.keyed.is_empty())
                .then(|| self.names.get(name).copied())
                .flatten()
        };
        let query = Query {
            principal,
            action,
            username: principal.username().and_then(name),
            client_id: name(principal.client_id()),
            dollar: topic.starts_with('$'),
        };
        let mut best = Best::default();
        for &rule_id in &self.unscoped {
            let rule = &self.policy.rules()[rule_id as usize];
            let in_scope = match rule.scope() {
                Scope::AllTopics => true,
                Scope::Prefix { prefix, except } => {
                    Scope::prefix_matches(prefix, except.as_ref(), topic)
                }
                Scope::Exact(text) => text == topic,
                // Filter rules live in the trie, never in this list.
                Scope::Filter(_) => false,
            };
            if in_scope {
                self.offer(&mut best, rule_id, &query);
            }
        }
        self.walk(topic, &query, &mut best);
        match best.decide(self.policy.combining_mode()) {
            Some(rule_id) => {
                Decision::by_rule(rule_id as usize, &self.policy.rules()[rule_id as usize])
            }
            None => Decision::deny(Reason::NoMatchingRule),
        }
    }

    /// Walks the trie with the topic, offering every rule whose filter
    /// matches it. Each pending node holds the topic left from a level start
    /// (`None` once every level is consumed). The walk keeps its own stack
    /// instead of recursing, so a topic of tens of thousands of levels
    /// (which `Limits` may allow) cannot overflow the thread's stack.
    fn walk(&self, topic: &str, query: &Query<'_>, best: &mut Best) {
        let mut pending = Pending::new((0, Some(topic)));
        while let Some((node_id, rest)) = pending.pop() {
            let node = &self.nodes[node_id as usize];
            let at_root = node_id == 0;
            // `#` matches the parent level and everything below, but a filter
            // starting with a wildcard never matches a `$` topic.
            if !(at_root && query.dollar) {
                self.offer_slot(node_id, Slot::Hash, &node.hash, query, best);
            }
            let Some(rest) = rest else {
                self.offer_slot(node_id, Slot::End, &node.end, query, best);
                continue;
            };
            let (level, remainder) = match rest.split_once('/') {
                Some((level, remainder)) => (level, Some(remainder)),
                None => (rest, None),
            };
            if let Some(&child) = node.literal.get(level) {
                pending.push((child, remainder));
            }
            if let Some(child) = node.plus.filter(|_| !(at_root && query.dollar)) {
                pending.push((child, remainder));
            }
            for (parts, child) in node.patterns.iter().flat_map(|p| p.iter()) {
                let mode = self.policy.placeholder_mode();
                if let Some(len) = match_pattern_level(parts, query.principal, mode, rest) {
                    // After the matched level comes a `/` or the end, where
                    // `get` finds nothing left.
                    let remainder = rest.get(len + 1..);
                    pending.push((*child, remainder));
                }
            }
        }
    }

    fn offer_slot(
        &self,
        node: NodeId,
        slot: Slot,
        bucket: &Bucket,
        query: &Query<'_>,
        best: &mut Best,
    ) {
        for &rule_id in &bucket.rules {
            self.offer(best, rule_id, query);
        }
        if !bucket.keyed {
            return;
        }
        let mut lookup = |key: Key| {
            if let Some(rules) = self.keyed.get(&(node, slot, key)) {
                for &rule_id in rules {
                    self.offer(best, rule_id, query);
                }
            }
        };
        if let Some(id) = query.username {
            lookup(Key::Username(id));
        }
        if let Some(id) = query.client_id {
            lookup(Key::ClientId(id));
        }
        for group in query.principal.groups() {
            if let Some(&id) = self.names.get(group.as_str()) {
                lookup(Key::Group(id));
            }
        }
    }

    /// Offers a rule whose scope matched, if its action and subject apply.
    fn offer(&self, best: &mut Best, rule_id: RuleId, query: &Query<'_>) {
        let rule = &self.policy.rules()[rule_id as usize];
        if rule.actions().contains(query.action) && rule.subject().applies_to(query.principal) {
            best.offer(rule_id, rule.effect());
        }
    }

    /// Builds the trie path of a rule's filter and returns where the rule
    /// goes, or records it as unscoped.
    fn insert(&mut self, rule_index: usize) -> Option<(NodeId, Slot, RuleId)> {
        let rule_id = RuleId::try_from(rule_index).unwrap_or(RuleId::MAX);
        let Scope::Filter(filter) = self.policy.rules()[rule_index].scope() else {
            self.unscoped.push(rule_id);
            return None;
        };
        let mut node = 0;
        let mut slot = Slot::End;
        for level in filter.level_specs() {
            node = match level {
                LevelSpec::Hash => {
                    slot = Slot::Hash;
                    break;
                }
                LevelSpec::Literal(text) => self.literal_child(node, text),
                LevelSpec::Plus => match self.nodes[node as usize].plus {
                    Some(child) => child,
                    None => {
                        let child = self.new_node();
                        self.nodes[node as usize].plus = Some(child);
                        child
                    }
                },
                LevelSpec::Pattern(parts) => self.pattern_child(node, parts),
            };
        }
        Some((node, slot, rule_id))
    }

    fn new_node(&mut self) -> NodeId {
        self.nodes.push(Node::default());
        NodeId::try_from(self.nodes.len() - 1).unwrap_or(NodeId::MAX)
    }

    fn literal_child(&mut self, node: NodeId, text: String) -> NodeId {
        if let Some(&child) = self.nodes[node as usize].literal.get(text.as_str()) {
            return child;
        }
        let child = self.new_node();
        self.nodes[node as usize]
            .literal
            .insert(text.into_boxed_str(), child);
        child
    }

    fn pattern_child(&mut self, node: NodeId, parts: Vec<PatternPart>) -> NodeId {
        let patterns = self.nodes[node as usize]
            .patterns
            .iter()
            .flat_map(|p| p.iter());
        if let Some((_, child)) = patterns.into_iter().find(|(p, _)| *p == parts) {
            return *child;
        }
        let child = self.new_node();
        self.nodes[node as usize]
            .patterns
            .get_or_insert_default()
            .push((parts, child));
        child
    }
}
