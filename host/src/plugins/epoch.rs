//! The clock that bounds a plugin call's CPU time: wasmtime's epoch
//! advances every [`TICK`] while a call into a plugin runs, and not at all
//! while none does, so an idle unit is not woken 200 times a second.
//!
//! A call sets its deadline in ticks from the epoch at its start; a worker
//! marks its calls with [`EpochClock::running`], and the clock's thread
//! sleeps (parked) whenever no call runs.
//!
//! Ticks are wall time, but the limit is CPU time: when a call's ticks run
//! out, its [`CallBudget`] reads the CPU time its thread has used and lets
//! it go on if the budget is not spent. A call on a busy machine, whose
//! thread waits for a core or for a disk, is not killed for the wait; a
//! loop is, within a tick of its budget. A wall-time ceiling of
//! [`WALL_FACTOR`] times the budget still bounds a call that waits, checked
//! when the call is back in wasm (a host call that blocks is bounded by
//! the host function itself, not here).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};
use wasmtime::{Engine, UpdateDeadline};

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

/// How many times its CPU budget a call may take in wall time.
pub const WALL_FACTOR: u32 = 20;

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// It used its CPU budget.
    Cpu,
    /// It ran for [`WALL_FACTOR`] times its budget, mostly waiting.
    Wall,
}

/// The CPU time one call may use, on the thread that runs it. Kept in the
/// store's data; [`CallBudget::begin`] before each call, and
/// [`CallBudget::on_deadline`] from the store's epoch callback.
#[derive(Debug, Default)]
pub struct CallBudget {
    cpu: Duration,
    started: Option<(Duration, Instant)>,
    spent: Option<Spent>,
}

impl CallBudget {
    /// Starts a call that may use `cpu` of CPU time.
    pub fn begin(&mut self, cpu: Duration) {
        self.cpu = cpu;
        self.started = Some((thread_cpu_time(), Instant::now()));
        self.spent = None;
    }

    /// The call's ticks ran out: stop it if its budget is spent, or else
    /// give it the ticks its remaining CPU time is worth.
    pub fn on_deadline(&mut self) -> UpdateDeadline {
        let Some((cpu_start, wall_start)) = self.started else {
            return UpdateDeadline::Interrupt;
        };
        let used = thread_cpu_time().saturating_sub(cpu_start);
        if used >= self.cpu {
            self.spent = Some(Spent::Cpu);
            return UpdateDeadline::Interrupt;
        }
        if wall_start.elapsed() >= self.cpu * WALL_FACTOR {
            self.spent = Some(Spent::Wall);
            return UpdateDeadline::Interrupt;
        }
        UpdateDeadline::Continue(ticks_for(self.cpu - used))
    }

    /// Which limit stopped the last call, if one did.
    pub fn spent(&self) -> Option<Spent> {
        self.spent
    }
}

/// The ticks that cover `time`, plus one: the current tick may be about to
/// end.
pub fn ticks_for(time: Duration) -> u64 {
    time.as_micros().div_ceil(TICK.as_micros()) as u64 + 1
}

/// CPU time used by the calling thread (user and system).
fn thread_cpu_time() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
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

    /// A call that waits is given more ticks; one that computes past its
    /// budget is stopped, and says it was the CPU.
    #[test]
    fn the_budget_counts_cpu_time_not_waiting() {
        let mut budget = CallBudget::default();
        budget.begin(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            matches!(budget.on_deadline(), UpdateDeadline::Continue(n) if n > 0),
            "a call that slept was stopped"
        );
        assert_eq!(budget.spent(), None);
        // Spins until stopped: the wall ceiling ends the loop if the CPU
        // budget does not.
        while !matches!(budget.on_deadline(), UpdateDeadline::Interrupt) {}
        assert_eq!(budget.spent(), Some(Spent::Cpu));
    }

    /// A call that only waits is still stopped at the wall-time ceiling.
    #[test]
    fn a_call_that_only_waits_meets_the_ceiling() {
        let mut budget = CallBudget::default();
        budget.begin(Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(2) * WALL_FACTOR);
        assert!(matches!(budget.on_deadline(), UpdateDeadline::Interrupt));
        assert_eq!(budget.spent(), Some(Spent::Wall));
    }
}
