//! The clock that bounds a plugin call's CPU time: wasmtime's epoch
//! advances every [`TICK`] while a call into a plugin runs, and not at all
//! while none does, so an idle unit is not woken 200 times a second.
//!
//! A call sets its deadline in ticks from the epoch at its start; a worker
//! marks its calls with [`EpochClock::running`], and the clock's thread
//! sleeps (parked) whenever no call runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while a call runs. A call's deadline is
/// rounded up to ticks.
pub const TICK: Duration = Duration::from_millis(5);

#[derive(Default)]
struct State {
    /// Calls running now.
    calls: AtomicUsize,
    /// The engine's runtime is gone.
    stop: AtomicBool,
    /// Ticks so far.
    ticks: AtomicU64,
}

/// The epoch clock of one engine.
pub struct EpochClock {
    state: Arc<State>,
    thread: Thread,
}

impl EpochClock {
    /// Starts the clock of `engine`, stopped until a call runs.
    pub fn start(engine: &Engine) -> Arc<Self> {
        let state = Arc::new(State::default());
        let weak = engine.weak();
        let ticking = state.clone();
        let handle = std::thread::Builder::new()
            .name("larm-epoch".into())
            .spawn(move || {
                while !ticking.stop.load(Ordering::Acquire) {
                    if ticking.calls.load(Ordering::Acquire) == 0 {
                        // Woken by the next call, or by the end (a spurious
                        // wake-up just goes round again).
                        std::thread::park();
                        continue;
                    }
                    let Some(engine) = weak.upgrade() else {
                        return;
                    };
                    engine.increment_epoch();
                    ticking.ticks.fetch_add(1, Ordering::Relaxed);
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .expect("cannot start the epoch thread");
        Arc::new(Self {
            state,
            thread: handle.thread().clone(),
        })
    }

    /// Keeps the clock ticking until the guard is dropped: hold it around
    /// every call into a plugin.
    pub fn running(self: &Arc<Self>) -> Running {
        if self.state.calls.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Running(self.clone())
    }
}

impl Drop for EpochClock {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// A call into a plugin is running (see [`EpochClock::running`]).
pub struct Running(Arc<EpochClock>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.state.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl EpochClock {
        fn ticks(&self) -> u64 {
            self.state.ticks.load(Ordering::Relaxed)
        }
    }

    /// No ticks while no call runs; ticks while one does, and while two
    /// overlap until both end.
    #[test]
    fn ticks_only_while_a_call_runs() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let clock = EpochClock::start(&engine);
        std::thread::sleep(TICK * 8);
        assert_eq!(clock.ticks(), 0, "ticked while idle");
        let first = clock.running();
        let second = clock.running();
        drop(first);
        std::thread::sleep(TICK * 8);
        assert!(clock.ticks() > 0, "stood still during a call");
        drop(second);
        // Let a tick that was under way finish.
        std::thread::sleep(TICK * 2);
        let after = clock.ticks();
        std::thread::sleep(TICK * 8);
        assert_eq!(clock.ticks(), after, "went on ticking after the calls");
    }
}
