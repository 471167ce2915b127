//! Chaining handlers: what an upstream handler adds to the records it passes on.
//!
//! A handler whose pipeline block declares `"out": "<type> <channel>"` forwards records to
//! the handlers whose `"in"` names the same channel. What flows on such a ring is what flows
//! on the reader's rings: the same frames, with the records' original sequence numbers. The
//! handler SDK forwards every entity record by itself (so the downstream handlers rebuild the
//! same entity tables and contexts); a flow or event goes on only when the handler asks for it
//! ([`Context::emit`](crate::tables::Context::emit)), optionally annotated with the
//! [`Policy`]s (rules) it matched. A downstream handler reads them with
//! [`Context::policies`](crate::tables::Context::policies).
//!
//! On the wire, a frame's payload is the record (see [`codec`](crate::codec)), followed, when
//! the record carries policies, by the list of policies.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

/// A rule or policy a record matched, as the reference exporter writes it in its `"policies"`
/// array (`{"id": ..., "desc": ..., "priority": ...}`), with the rule's tags (the reference
/// writes those in the record's top-level `"tags"` array).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Policy {
    /// The rule's name (the reference's `id`, its rule name).
    pub id: String,
    /// What the rule detects.
    pub desc: String,
    /// Priority as the reference (v0.7.0) exports it: 1 low, 2 medium, 3 high (higher is more
    /// urgent; 0: none given; other values are passed on as they are).
    pub priority: i64,
    /// The rule's tags.
    pub tags: Vec<String>,
}

impl Policy {
    /// A policy with this id (rule name), description and priority, and no tags.
    pub fn new(id: impl Into<String>, desc: impl Into<String>, priority: i64) -> Self {
        Policy {
            id: id.into(),
            desc: desc.into(),
            priority,
            tags: Vec::new(),
        }
    }

    /// The priority named `name` in the reference policy engine's words (`low` 1, `medium`
    /// 2, `high` 3, any case: the numbers its exporter writes), or given as a number
    /// (`"3"`); `None` for anything else.
    pub fn priority_from_name(name: &str) -> Option<i64> {
        match name.trim().to_ascii_lowercase().as_str() {
            "low" => Some(1),
            "medium" => Some(2),
            "high" => Some(3),
            other => other.parse().ok(),
        }
    }
}

/// The emission request of the record being handled: which policies it goes on with, if a
/// handler asked for it to be emitted. One per handler process with an output; the handler
/// reaches it through [`Context::emit`](crate::tables::Context::emit).
#[derive(Debug, Default)]
pub struct Emission {
    requested: RefCell<Option<Vec<Policy>>>,
}

impl Emission {
    /// An emission slot with nothing requested.
    pub fn new() -> Self {
        Emission::default()
    }

    /// Asks for the current record to be emitted with `incoming` (the policies it came with,
    /// on the first request) followed by `policies`.
    pub fn request(&self, incoming: &[Policy], policies: impl IntoIterator<Item = Policy>) {
        let mut slot = self.requested.borrow_mut();
        let list = slot.get_or_insert_with(|| incoming.to_vec());
        list.extend(policies);
    }

    /// The request made for the record just handled, if any, leaving the slot empty for the
    /// next one.
    pub fn take(&self) -> Option<Vec<Policy>> {
        self.requested.borrow_mut().take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_accumulate_after_the_incoming_policies_and_are_taken_once() {
        let e = Emission::new();
        assert_eq!(e.take(), None);
        let upstream = [Policy::new("a", "first", 0)];
        e.request(&upstream, [Policy::new("b", "second", 2)]);
        e.request(&upstream, [Policy::new("c", "third", 1)]);
        let got: Vec<String> = e.take().unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(e.take(), None);
        e.request(&[], []);
        assert_eq!(e.take(), Some(vec![]));
    }

    #[test]
    fn priorities_by_name_or_number() {
        assert_eq!(Policy::priority_from_name("High"), Some(3));
        assert_eq!(Policy::priority_from_name("medium"), Some(2));
        assert_eq!(Policy::priority_from_name("low"), Some(1));
        assert_eq!(Policy::priority_from_name("7"), Some(7));
        assert_eq!(Policy::priority_from_name("urgent"), None);
    }
}
