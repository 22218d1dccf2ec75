//! Fault accounting: a plugin that faults `max_faults` times within a
//! window is quarantined.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::bindings::larm::plugin::types::PluginState;

/// One plugin's fault record.
#[derive(Debug)]
pub struct Supervisor {
    max_faults: u32,
    window: Duration,
    faults: VecDeque<Instant>,
    state: PluginState,
    last_fault: Option<String>,
}

impl Supervisor {
    /// Quarantine after `max_faults` faults within `window`.
    pub fn new(max_faults: u32, window: Duration) -> Self {
        Self {
            max_faults,
            window,
            faults: VecDeque::new(),
            state: PluginState::Running,
            last_fault: None,
        }
    }

    /// Records a fault at `now`; returns the new state.
    pub fn fault(&mut self, now: Instant, why: String) -> PluginState {
        self.expire(now);
        self.faults.push_back(now);
        self.last_fault = Some(why);
        self.state = if self.faults.len() as u32 >= self.max_faults {
            PluginState::Quarantined
        } else {
            PluginState::Restarted
        };
        self.state
    }

    fn expire(&mut self, now: Instant) {
        while self
            .faults
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.faults.pop_front();
        }
    }

    /// Faults counted in the current window.
    pub fn faults(&mut self, now: Instant) -> u32 {
        self.expire(now);
        self.faults.len() as u32
    }

    /// Current state.
    pub fn state(&self) -> PluginState {
        self.state
    }

    /// The last fault's description.
    pub fn last_fault(&self) -> Option<&str> {
        self.last_fault.as_deref()
    }

    /// A fresh start (after the plugin is replaced).
    pub fn reset(&mut self) {
        self.faults.clear();
        self.state = PluginState::Running;
        self.last_fault = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantines_after_n_faults_in_the_window() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(3, Duration::from_secs(60));
        assert_eq!(s.fault(t0, "a".into()), PluginState::Restarted);
        assert_eq!(
            s.fault(t0 + Duration::from_secs(10), "b".into()),
            PluginState::Restarted
        );
        assert_eq!(
            s.fault(t0 + Duration::from_secs(20), "c".into()),
            PluginState::Quarantined
        );
        assert_eq!(s.last_fault(), Some("c"));
        s.reset();
        assert_eq!(s.state(), PluginState::Running);
    }

    #[test]
    fn old_faults_expire() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(2, Duration::from_secs(60));
        s.fault(t0, "a".into());
        assert_eq!(
            s.fault(t0 + Duration::from_secs(61), "b".into()),
            PluginState::Restarted
        );
        assert_eq!(s.faults(t0 + Duration::from_secs(200)), 0);
    }
}
