//! Flapping inputs: an input that changes more than `alarm.flap-changes`
//! times within the hold-off stops sending an SMS and a call per change.
//! Its changes are counted instead, and summed up once per hold-off
//! ("Door changed 480 times in 5 min"), until a whole hold-off passes
//! without a change. Plain logic on the plugin's monotonic clock, so it
//! has no calls of its own into the host.

use std::collections::{BTreeMap, VecDeque};

use larm_rules::settings::FlapLimit;

/// What to do with one change of an input.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it as usual.
    Handle,
    /// The input is held: count it only.
    Held,
    /// This change made the input flapping: `changes` within the hold-off.
    /// Hold it, and time the end of the hold-off.
    StartHold {
        /// Changes seen within the hold-off, this one included.
        changes: u32,
    },
}

/// How a hold-off ended.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldEnd {
    /// The input changed `changes` times during it: still flapping, held
    /// for another hold-off.
    Still {
        /// Changes during the hold-off that ended.
        changes: u32,
    },
    /// No change during it (or the input was not held): handle its state
    /// as usual again.
    Steady,
}

#[derive(Debug)]
enum Track {
    /// When the recent changes happened (ms), oldest first.
    Counting(VecDeque<u64>),
    /// Held; changes since the current hold-off began.
    Held(u32),
}

/// The flap state of every input.
#[derive(Debug, Default)]
pub struct Flaps(BTreeMap<u8, Track>);

impl Flaps {
    /// An empty state.
    pub const fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Input `input` changed at `at_ms`.
    pub fn change(&mut self, input: u8, at_ms: u64, limit: FlapLimit) -> Verdict {
        if limit.changes == 0 {
            self.0.remove(&input);
            return Verdict::Handle;
        }
        let track = self
            .0
            .entry(input)
            .or_insert_with(|| Track::Counting(VecDeque::new()));
        match track {
            Track::Held(changes) => {
                *changes = changes.saturating_add(1);
                Verdict::Held
            }
            Track::Counting(recent) => {
                let window = u64::from(limit.hold_off_s) * 1000;
                recent.push_back(at_ms);
                while recent
                    .front()
                    .is_some_and(|t| at_ms.saturating_sub(*t) >= window)
                {
                    recent.pop_front();
                }
                let changes = recent.len() as u32;
                if changes > limit.changes {
                    *track = Track::Held(0);
                    Verdict::StartHold { changes }
                } else {
                    Verdict::Handle
                }
            }
        }
    }

    /// Forgets `input`'s changes and hold.
    pub fn release(&mut self, input: u8) {
        self.0.remove(&input);
    }

    /// A hold-off of `input` ended.
    pub fn hold_over(&mut self, input: u8) -> HoldEnd {
        match self.0.get_mut(&input) {
            Some(Track::Held(changes)) if *changes > 0 => {
                let changes = std::mem::take(changes);
                HoldEnd::Still { changes }
            }
            _ => {
                self.release(input);
                HoldEnd::Steady
            }
        }
    }
}

/// A span of seconds in words: "5 min", "45 s".
pub fn span(seconds: u32) -> String {
    if seconds.is_multiple_of(60) {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: FlapLimit = FlapLimit {
        changes: 3,
        hold_off_s: 10,
    };

    #[test]
    fn a_flapping_input_is_held_until_a_quiet_hold_off() {
        let mut flaps = Flaps::new();
        for at in [0, 1000, 2000] {
            assert_eq!(flaps.change(1, at, LIMIT), Verdict::Handle);
        }
        assert_eq!(flaps.change(2, 2500, LIMIT), Verdict::Handle, "per input");
        assert_eq!(
            flaps.change(1, 3000, LIMIT),
            Verdict::StartHold { changes: 4 }
        );
        for at in 4000..4480 {
            assert_eq!(flaps.change(1, at, LIMIT), Verdict::Held);
        }
        assert_eq!(flaps.hold_over(1), HoldEnd::Still { changes: 480 });
        assert_eq!(flaps.hold_over(1), HoldEnd::Steady);
        assert_eq!(flaps.change(1, 30_000, LIMIT), Verdict::Handle);
    }

    #[test]
    fn changes_spread_out_are_not_flapping() {
        let mut flaps = Flaps::new();
        for at in (0..100).map(|i| i * 4000) {
            assert_eq!(flaps.change(1, at, LIMIT), Verdict::Handle);
        }
        let off = FlapLimit {
            changes: 0,
            ..LIMIT
        };
        for at in 0..100 {
            assert_eq!(flaps.change(1, at, off), Verdict::Handle);
        }
        assert_eq!(span(300), "5 min");
        assert_eq!(span(45), "45 s");
    }
}
