//! Joining the parts of concatenated messages.
//!
//! Parts are keyed by sender, reference and part count (parts may arrive out
//! of order, or through different service centres). A message whose parts
//! do not all arrive within the timeout is delivered anyway, with `[…]`
//! where parts are missing: losing the text we have would be worse.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::{Address, Body, Deliver, Timestamp};

/// A whole received SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The sender.
    pub sender: Address,
    /// The text.
    pub text: String,
    /// The first part's service-centre timestamp.
    pub timestamp: Timestamp,
    /// Whether parts were missing when the timeout struck.
    pub incomplete: bool,
}

type Key = (Address, u16, u8);

struct Pending {
    first_seen: Instant,
    timestamp: Timestamp,
    parts: BTreeMap<u8, Body>,
}

/// Collects parts until their message is whole.
pub struct Reassembler {
    timeout: Duration,
    pending: HashMap<Key, Pending>,
}

impl Reassembler {
    /// Gives up waiting for missing parts after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            pending: HashMap::new(),
        }
    }

    /// Takes a received part; returns the message once it is whole.
    pub fn push(&mut self, part: Deliver, now: Instant) -> Option<Sms> {
        let Some(concat) = part.concat.filter(|c| c.total > 1) else {
            return Some(Sms {
                sender: part.sender,
                text: part.body.text(),
                timestamp: part.timestamp,
                incomplete: false,
            });
        };
        let key = (part.sender, concat.reference, concat.total);
        let pending = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_seen: now,
            timestamp: part.timestamp,
            parts: BTreeMap::new(),
        });
        if concat.seq >= 1 && concat.seq <= concat.total {
            pending.parts.insert(concat.seq, part.body);
        }
        if pending.parts.len() == usize::from(concat.total) {
            let pending = self.pending.remove(&key)?;
            return Some(join(key.0, key.2, pending));
        }
        None
    }

    /// Messages whose missing parts did not come in time, with gaps marked.
    pub fn expire(&mut self, now: Instant) -> Vec<Sms> {
        let expired: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.first_seen) >= self.timeout)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|key| {
                let pending = self.pending.remove(&key)?;
                Some(join(key.0, key.2, pending))
            })
            .collect()
    }

    /// When the oldest incomplete message times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.first_seen + self.timeout)
            .min()
    }
}

fn join(sender: Address, total: u8, pending: Pending) -> Sms {
    let mut text = String::new();
    let mut body: Option<Body> = None;
    let mut incomplete = false;
    for seq in 1..=total {
        match pending.parts.get(&seq) {
            Some(part) => match &mut body {
                Some(b) => b.extend(part),
                None => body = Some(part.clone()),
            },
            None => {
                incomplete = true;
                if let Some(b) = body.take() {
                    text.push_str(&b.text());
                }
                text.push_str("[…]");
            }
        }
    }
    if let Some(b) = body {
        text.push_str(&b.text());
    }
    Sms {
        sender,
        text,
        timestamp: pending.timestamp,
        incomplete,
    }
}
