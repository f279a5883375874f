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
//! - Rules without a filter ([`Scope::AllTopics`], [`Scope::Prefix`]) are
//!   few and checked on every request.
//!
//! SUBSCRIBE requests are decided by the policy's linear evaluation: they
//! come once per subscription rather than once per message, and the
//! containment check does not follow a single trie path.

use std::collections::HashMap;

use crate::pattern::{LevelSpec, PatternPart, match_pattern_level};
use crate::policy::{CombiningMode, Decision, Policy, Reason, Target, audit_denial};
use crate::principal::Principal;
use crate::rule::{Action, Effect, Scope, Subject};

type NodeId = u32;
type RuleId = u32;

/// Which rules of a node: those ending there, or those whose `#` stands there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    End,
    Hash,
}

/// The keyed subjects, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Username(u32),
    ClientId(u32),
    Group(u32),
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, NodeId>,
    plus: Option<NodeId>,
    patterns: Vec<(Vec<PatternPart>, NodeId)>,
    /// Rules for every client, anonymous clients, or wildcard identities.
    end: Vec<RuleId>,
    hash: Vec<RuleId>,
    /// Whether `keyed` holds rules of this node.
    keyed_end: bool,
    keyed_hash: bool,
}

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
    keyed: HashMap<(NodeId, Slot, Key), Vec<RuleId>>,
    names: HashMap<Box<str>, u32>,
    unscoped: Vec<RuleId>,
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
            keyed: HashMap::new(),
            names: HashMap::new(),
            unscoped: Vec::new(),
        };
        for rule_id in 0..index.policy.rules().len() {
            index.insert(rule_id);
        }
        index
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
            return self.policy.check_quietly(principal, action, topic);
        }
        let topic = match self.policy.validate(action, topic) {
            Ok(Target::Name(topic)) => topic,
            Ok(Target::Filter(_)) => return self.policy.check_quietly(principal, action, topic),
            Err(reason) => return Decision::deny(reason),
        };
        let query = Query {
            principal,
            action,
            username: principal
                .username()
                .and_then(|u| self.names.get(u).copied()),
            client_id: self.names.get(principal.client_id()).copied(),
            dollar: topic.starts_with('$'),
        };
        let mut best = Best::default();
        for &rule_id in &self.unscoped {
            let rule = &self.policy.rules()[rule_id as usize];
            let in_scope = match rule.scope() {
                Scope::Prefix { prefix, except } => {
                    Scope::prefix_matches(prefix, except.as_ref(), topic)
                }
                _ => true,
            };
            if in_scope {
                self.offer(&mut best, rule_id, &query);
            }
        }
        self.visit(0, Some(topic), &query, &mut best);
        match best.decide(self.policy.combining_mode()) {
            Some(rule_id) => {
                Decision::by_rule(rule_id as usize, &self.policy.rules()[rule_id as usize])
            }
            None => Decision::deny(Reason::NoMatchingRule),
        }
    }

    /// Walks the trie from `node` with `rest` the topic left from a level
    /// start (`None` once every level is consumed). Depth is bounded by the
    /// policy's depth limit, checked before.
    fn visit(&self, node_id: NodeId, rest: Option<&str>, query: &Query<'_>, best: &mut Best) {
        let node = &self.nodes[node_id as usize];
        let at_root = node_id == 0;
        // `#` matches the parent level and everything below, but a filter
        // starting with a wildcard never matches a `$` topic.
        if !(at_root && query.dollar) {
            self.offer_slot(
                node_id,
                Slot::Hash,
                &node.hash,
                node.keyed_hash,
                query,
                best,
            );
        }
        let Some(rest) = rest else {
            self.offer_slot(node_id, Slot::End, &node.end, node.keyed_end, query, best);
            return;
        };
        let (level, remainder) = match rest.split_once('/') {
            Some((level, remainder)) => (level, Some(remainder)),
            None => (rest, None),
        };
        if let Some(&child) = node.literal.get(level) {
            self.visit(child, remainder, query, best);
        }
        if let Some(child) = node.plus.filter(|_| !(at_root && query.dollar)) {
            self.visit(child, remainder, query, best);
        }
        for (parts, child) in &node.patterns {
            let mode = self.policy.placeholder_mode();
            if let Some(len) = match_pattern_level(parts, query.principal, mode, rest) {
                let remainder = rest.get(len + 1..).filter(|_| len < rest.len());
                self.visit(*child, remainder, query, best);
            }
        }
    }

    fn offer_slot(
        &self,
        node: NodeId,
        slot: Slot,
        general: &[RuleId],
        keyed: bool,
        query: &Query<'_>,
        best: &mut Best,
    ) {
        for &rule_id in general {
            self.offer(best, rule_id, query);
        }
        if !keyed {
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

    fn insert(&mut self, rule_index: usize) {
        let rule_id = RuleId::try_from(rule_index).unwrap_or(RuleId::MAX);
        let rule = &self.policy.rules()[rule_index];
        let Scope::Filter(filter) = rule.scope() else {
            self.unscoped.push(rule_id);
            return;
        };
        let levels = filter.level_specs();
        let subject = rule.subject().clone();
        let mut node = 0;
        let mut slot = Slot::End;
        for level in levels {
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
        let key = match &subject {
            Subject::Username(name) => Some(Key::Username(self.intern(name))),
            Subject::ClientId(name) => Some(Key::ClientId(self.intern(name))),
            Subject::Group(name) => Some(Key::Group(self.intern(name))),
            _ => None,
        };
        let target = &mut self.nodes[node as usize];
        match (key, slot) {
            (None, Slot::End) => target.end.push(rule_id),
            (None, Slot::Hash) => target.hash.push(rule_id),
            (Some(key), slot) => {
                match slot {
                    Slot::End => target.keyed_end = true,
                    Slot::Hash => target.keyed_hash = true,
                }
                self.keyed
                    .entry((node, slot, key))
                    .or_default()
                    .push(rule_id);
            }
        }
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
        if let Some((_, child)) = self.nodes[node as usize]
            .patterns
            .iter()
            .find(|(p, _)| *p == parts)
        {
            return *child;
        }
        let child = self.new_node();
        self.nodes[node as usize].patterns.push((parts, child));
        child
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.insert(name.into(), id);
        id
    }
}
