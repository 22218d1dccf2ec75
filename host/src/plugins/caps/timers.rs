//! `timers`: always allowed, at most [`MAX_TIMERS`] at once per plugin.
//! Timers belong to the plugin, not to one instance, so a timer set before
//! a trap still fires for the next instance.

use std::collections::HashMap;
use std::time::Duration;

use super::HostState;
use crate::plugins::bindings::larm::plugin::timers::Host;
use crate::plugins::bindings::larm::plugin::types::{Error, TimerEvent, TimerId};

/// Timers one plugin may hold at once.
pub const MAX_TIMERS: usize = 64;

/// One plugin's running timers, so they can be cancelled.
#[derive(Default)]
pub(super) struct Timers {
    next: u64,
    pending: HashMap<u64, tokio::task::AbortHandle>,
}

impl Timers {
    /// Cancels every timer (the plugin is gone).
    pub(super) fn cancel_all(&mut self) {
        for (_, task) in self.pending.drain() {
            task.abort();
        }
    }
}

impl Host for HostState {
    fn set(&mut self, delay_ms: u64, tag: String) -> Result<TimerId, Error> {
        let caps = &self.caps;
        let (Some(runtime), Some(sink)) = (&caps.shared.runtime, &caps.timer_sink) else {
            return Err(Error::Unavailable("timers are not running".into()));
        };
        let mut timers = caps.timers.lock().unwrap();
        timers.pending.retain(|_, task| !task.is_finished());
        if timers.pending.len() >= MAX_TIMERS {
            return Err(Error::Invalid(format!(
                "a plugin may hold at most {MAX_TIMERS} timers"
            )));
        }
        timers.next += 1;
        let id = timers.next;
        let sink = sink.clone();
        let task = runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            sink(TimerEvent { id, tag });
        });
        timers.pending.insert(id, task.abort_handle());
        Ok(id)
    }

    fn cancel(&mut self, id: TimerId) -> bool {
        match self.caps.timers.lock().unwrap().pending.remove(&id) {
            Some(task) if !task.is_finished() => {
                task.abort();
                true
            }
            _ => false,
        }
    }
}
