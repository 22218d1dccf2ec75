//! The host capabilities a plugin may call, one file per WIT interface,
//! each implementing the generated `Host` trait on [`HostState`] and
//! checking the plugin's grants before anything reaches the hardware.
//!
//! Effects that leave the unit (SMS, calls, server reports, restarts) are
//! emitted as [`Action`]s: the unit's event loop hands them to the outbox
//! or the system. Outputs are switched on the board directly and then
//! announced. The actions of one event go to the unit together (see
//! [`PluginCaps::begin_event`]), so an alarm's report, SMS and calls can
//! escalate as one.
//!
//! The benchmarks call the same traits, so a native rule pays the same
//! checks as a wasm one.

mod clock;
mod io;
mod kv;
mod log;
mod password;
mod server;
mod settings;
mod sms;
mod status;
mod system;
mod timers;
mod voice;
mod wasi;

use std::sync::{Arc, Mutex};

use firmware_bridge::board::{BoardError, ErrorKind};
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::WasiCtx;

use super::bindings::Capabilities as CapabilityWorld;
use super::bindings::larm::plugin::types::{self, Error, TimerEvent};
use super::epoch::CallBudget;
use crate::config::{Grants, Scope};
use crate::outputs::OutputError;
use crate::quota::Cost;
use crate::state::StateError;
use crate::unit::{Action, Shared};
use larm_rules::PhoneNumber;

pub use timers::MAX_TIMERS;

/// Delivers a fired timer to the plugin's queue.
pub type TimerSink = Arc<dyn Fn(TimerEvent) + Send + Sync>;

/// What one plugin's capabilities share across its instances: its name,
/// grants, timers and the actions of the event being handled. A trap drops
/// the instance, not this.
pub struct PluginCaps {
    name: Arc<str>,
    grants: Grants,
    shared: Arc<Shared>,
    timers: Mutex<timers::Timers>,
    timer_sink: Option<TimerSink>,
    /// The actions of the event being handled; None between events.
    effects: Mutex<Option<Vec<Action>>>,
}

impl PluginCaps {
    /// Capabilities for plugin `name` under `grants`. Fired timers go to
    /// `timer_sink`; without one, `timers.set` is unavailable.
    pub fn new(
        name: &str,
        grants: Grants,
        shared: Arc<Shared>,
        timer_sink: Option<TimerSink>,
    ) -> Self {
        Self {
            name: name.into(),
            grants,
            shared,
            timers: Mutex::default(),
            timer_sink,
            effects: Mutex::new(None),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts collecting the actions of one event.
    pub fn begin_event(&self) {
        *self.effects.lock().unwrap() = Some(Vec::new());
    }

    /// Ends the event: its actions go to the unit together.
    pub fn end_event(&self) {
        let effects = self.effects.lock().unwrap().take();
        self.shared.emit_all(effects.unwrap_or_default());
    }

    /// Emits an action: with the event's others while one is handled, else
    /// on its own.
    fn emit(&self, action: Action) {
        match self.effects.lock().unwrap().as_mut() {
            Some(effects) => effects.push(action),
            None => self.shared.emit(action),
        }
    }

    /// Counts a send of `units` of `cost` against the plugin's quotas.
    fn spend(&self, cost: Cost, units: u32) -> Result<(), Error> {
        self.shared
            .spend(&self.name, cost, units)
            .map_err(|over| Error::OverQuota(over.to_string()))
    }

    /// Refuses a call outside the grants: logged, never reaching hardware.
    fn refuse(&self, call: &str, grant: &str) -> Error {
        tracing::warn!(plugin = %self.name, "refused {call}: not in grants ({grant})");
        Error::NotGranted(format!("{call} needs `{grant}` in this plugin's grants"))
    }

    /// Lets `call` through if `granted`, else refuses it naming `grant`.
    fn require(&self, granted: bool, call: &str, grant: &str) -> Result<(), Error> {
        if granted {
            Ok(())
        } else {
            Err(self.refuse(call, grant))
        }
    }

    /// A number `call` (to `sms` or `calls`) may reach: in `scope` and a
    /// phone number by the shared rule.
    fn reachable(
        &self,
        scope: &Scope<PhoneNumber>,
        number: &str,
        call: &str,
        grant: &str,
    ) -> Result<PhoneNumber, Error> {
        let call = format!("{call} {}", number.escape_debug());
        self.require(scope.allows_number(number), &call, grant)?;
        PhoneNumber::parse(number).map_err(|e| {
            Error::Invalid(format!(
                "`{}` is not a phone number: {e}",
                number.escape_debug()
            ))
        })
    }
}

impl Drop for PluginCaps {
    fn drop(&mut self) {
        // Timers belong to the plugin, not to one instance: every instance
        // shares the plugin's `Arc<PluginCaps>`, so this runs only when the
        // plugin itself is gone.
        self.timers.lock().unwrap().cancel_all();
    }
}

/// The data of one plugin instance's store.
pub struct HostState {
    caps: Arc<PluginCaps>,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory cap of the instance.
    pub limits: MemoryCap,
    /// CPU budget of the call running now.
    pub budget: CallBudget,
}

/// A plugin instance's memory cap, which remembers that it refused to grow
/// memory, so the fault is told as what it is rather than guessed from a
/// message.
#[derive(Debug)]
pub struct MemoryCap {
    max: usize,
    hit: bool,
}

impl MemoryCap {
    /// Whether a growth past the cap was refused.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            // An error, not `false`: the guest traps rather than carrying on
            // with an allocation that failed (Rust guests abort anyway).
            wasmtime::bail!("memory cap of {} bytes reached", self.max);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl HostState {
    /// State for an instance of the plugin behind `caps`, whose linear
    /// memories may grow to `memory_bytes` in all.
    pub fn new(caps: Arc<PluginCaps>, memory_bytes: usize) -> Self {
        Self {
            wasi: wasi::context(caps.name.clone()),
            caps,
            table: ResourceTable::new(),
            limits: MemoryCap {
                max: memory_bytes,
                hit: false,
            },
            budget: CallBudget::default(),
        }
    }
}

/// Adds WASI (empty context) and the larm capabilities to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    CapabilityWorld::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl types::Host for HostState {}

/// A refused switch as the WIT's `error`.
fn from_output(e: OutputError) -> Error {
    match e {
        OutputError::Board(e) => from_board(e),
        e @ (OutputError::Held { .. } | OutputError::NotOwner { .. }) => Error::Held(e.to_string()),
        OutputError::Time(why) => Error::Invalid(why),
    }
}

/// A board error as the WIT's `error`: by its kind, as the WIT promises
/// (a missing card is `unavailable`, a bad id `invalid`).
fn from_board(e: BoardError) -> Error {
    match e.kind() {
        ErrorKind::Unavailable => Error::Unavailable(e.to_string()),
        ErrorKind::Invalid => Error::Invalid(e.to_string()),
    }
}

/// A state store error as the WIT's `error`.
fn from_state(e: StateError) -> Error {
    match e {
        StateError::Quota | StateError::Full { .. } => Error::Invalid(e.to_string()),
        StateError::Db(_) => Error::Unavailable(e.to_string()),
    }
}
