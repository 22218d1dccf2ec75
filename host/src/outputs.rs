//! Who switches the unit's outputs, and for how long.
//!
//! Every switch goes through [`Outputs`]: the plugins' `io` calls (SMS and
//! server commands come through their plugins), the HTTP API, and the
//! timers that end a timed output. One rule holds for all of them:
//!
//! - Whoever switches an output **on holds it** until it is off again. A
//!   switch by a source of lower priority is refused while the output is
//!   held ([`OutputError::Held`]); it is not queued, so nothing switches
//!   later than its sender expects. Off releases the output.
//! - Priorities come from the config, per output: `[outputs.N] owners`,
//!   highest first. A source not listed may not switch that output at
//!   all. An output without `owners` may be switched by any source with
//!   the grant, all of the same priority: the last switch wins.
//! - A timed switch (`on` for a time) is kept in the state store with its
//!   end in wall time, so it ends at its time across a restart, or at once
//!   if that time passed while larmd was stopped.
//!
//! The holds are published on a `watch` channel: the HTTP status shows who
//! holds each output, and the unit's timer task wakes for the next end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firmware_bridge::board::{Board, BoardError, OutputId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::outbox::now_ms;
use crate::state::State;
use crate::unit::{Action, Shared};

/// The state store's record of the running timed switches.
const RECORD: &str = "outputs.timed";
/// How soon a timed output whose switch-off failed (the card is out) is
/// tried again.
const RETRY: Duration = Duration::from_secs(1);

/// A switch asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Off (releases the output).
    Off,
    /// On until switched off (a latch).
    On,
    /// On for a time, then off.
    OnFor(Duration),
}

impl Switch {
    /// `on`, for `time` if given.
    pub fn new(on: bool, time: Option<Duration>) -> Self {
        match (on, time) {
            (false, _) => Switch::Off,
            (true, None) => Switch::On,
            (true, Some(t)) => Switch::OnFor(t),
        }
    }
}

/// Who holds an output that is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The source that switched it on: a plugin's name, or `http`.
    pub by: String,
    /// Its rank in the output's `owners` (0 is the highest); none when the
    /// output has no owners.
    pub rank: Option<usize>,
    /// When it switches off by itself, in milliseconds since the Unix
    /// epoch; none for a latch. Kept for a restart; while larmd runs, the
    /// end is `ends`, so a step of the wall clock does not move it.
    pub off_at_ms: Option<u64>,
    /// When it switches off by itself, on this process's clock.
    #[serde(skip)]
    pub ends: Option<Instant>,
}

/// A switch that was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The board refused it (no such output, card missing).
    #[error(transparent)]
    Board(#[from] BoardError),
    /// A source of higher priority holds the output.
    #[error("output {output} is held by {by}, which has a higher priority")]
    Held {
        /// The output.
        output: u8,
        /// Its holder.
        by: String,
    },
    /// The output's owners do not include this source.
    #[error("output {output} may be switched only by {}", owners.join(", "))]
    NotOwner {
        /// The output.
        output: u8,
        /// Who may switch it.
        owners: Vec<String>,
    },
    /// The time is out of range (`larm_rules::outputs`).
    #[error("{0}")]
    Time(String),
}

/// The unit's outputs: the board's, with holds, priorities and timers.
pub struct Outputs {
    board: Arc<dyn Board>,
    state: Arc<State>,
    owners: BTreeMap<u8, Vec<String>>,
    /// Makes each switch, its check and its record one step.
    lock: Mutex<()>,
    published: watch::Sender<BTreeMap<u8, Hold>>,
}

impl Outputs {
    /// The outputs of `board`, with the owners the config gives them.
    pub fn new(
        board: Arc<dyn Board>,
        state: Arc<State>,
        owners: BTreeMap<u8, Vec<String>>,
    ) -> Self {
        Self {
            board,
            state,
            owners,
            lock: Mutex::new(()),
            published: watch::Sender::new(BTreeMap::new()),
        }
    }

    /// The holds, as they change.
    pub fn holds(&self) -> watch::Receiver<BTreeMap<u8, Hold>> {
        self.published.subscribe()
    }

    /// Who may switch `output`, highest priority first; empty: anyone.
    pub fn owners(&self, output: u8) -> &[String] {
        self.owners.get(&output).map_or(&[], Vec::as_slice)
    }

    /// Switches `output` for `by`, under the rule of the module doc, and
    /// returns the action that says so, for `by` to emit.
    pub fn switch(&self, by: &str, output: u8, switch: Switch) -> Result<Action, OutputError> {
        let mut actions = self.switch_all(by, &[(output, switch)])?;
        Ok(actions.remove(0))
    }

    /// Switches several outputs for `by` as one: each switch is checked
    /// first, and if one is refused none is made.
    pub fn switch_all(
        &self,
        by: &str,
        switches: &[(u8, Switch)],
    ) -> Result<Vec<Action>, OutputError> {
        let _guard = self.lock.lock().unwrap();
        let mut checked = Vec::with_capacity(switches.len());
        for &(output, switch) in switches {
            checked.push(self.check(by, output, switch)?);
        }
        // The board may still fail one (the card pulled just now): the
        // ones switched before it go back, so none is made.
        let mut before = Vec::with_capacity(checked.len());
        for (output, hold) in &checked {
            let id = OutputId(*output);
            let switched = self
                .board
                .read_output(id)
                .and_then(|was| self.board.set_output(id, hold.is_some()).map(|()| was));
            match switched {
                Ok(was) => before.push((id, was)),
                Err(e) => {
                    for (id, was) in before.into_iter().rev() {
                        if let Err(e) = self.board.set_output(id, was) {
                            warn!("output {}: switching it back: {e}", id.0);
                        }
                    }
                    return Err(e.into());
                }
            }
        }
        // Only timed holds are kept: a latch costs no write to the store
        // (it would put an fsync on every alarm's path to its output).
        let timed = |output: &u8, hold: &Option<Hold>| {
            hold.as_ref().is_some_and(|h| h.off_at_ms.is_some())
                || self
                    .published
                    .borrow()
                    .get(output)
                    .is_some_and(|h| h.off_at_ms.is_some())
        };
        let keep = checked.iter().any(|(o, h)| timed(o, h));
        let mut actions = Vec::with_capacity(checked.len());
        for (output, hold) in checked {
            let on = hold.is_some();
            if let Some(ends) = hold.as_ref().and_then(|h| h.ends) {
                info!(
                    "output {output} on for {:.1} s (by {})",
                    ends.saturating_duration_since(crate::unit::now())
                        .as_secs_f64(),
                    by.escape_debug()
                );
            }
            self.set_hold(output, hold);
            actions.push(Action::Output {
                by: by.to_string(),
                output,
                on,
            });
        }
        if keep {
            self.save();
        }
        Ok(actions)
    }

    /// Checks one switch by `by`; the output's hold after it.
    fn check(
        &self,
        by: &str,
        output: u8,
        switch: Switch,
    ) -> Result<(u8, Option<Hold>), OutputError> {
        self.board.read_output(OutputId(output))?;
        let rank = self.rank_of(by, output)?;
        if let Some(held) = self.published.borrow().get(&output)
            && held.by != by
            && held.rank.zip(rank).is_some_and(|(h, r)| r > h)
        {
            return Err(OutputError::Held {
                output,
                by: held.by.clone(),
            });
        }
        let time = match switch {
            Switch::OnFor(t) => {
                let ms =
                    larm_rules::outputs::check_ms(t.as_millis().try_into().unwrap_or(u64::MAX))
                        .map_err(OutputError::Time)?;
                Some(u64::from(ms))
            }
            Switch::On | Switch::Off => None,
        };
        let hold = (switch != Switch::Off).then(|| Hold {
            by: by.to_string(),
            rank,
            off_at_ms: time.map(|ms| now_ms() + ms),
            ends: time.map(|ms| crate::unit::now() + Duration::from_millis(ms)),
        });
        Ok((output, hold))
    }

    /// The rank of `by` among the owners of `output`.
    fn rank_of(&self, by: &str, output: u8) -> Result<Option<usize>, OutputError> {
        let owners = self.owners(output);
        if owners.is_empty() {
            return Ok(None);
        }
        match owners.iter().position(|o| o == by) {
            Some(rank) => Ok(Some(rank)),
            None => Err(OutputError::NotOwner {
                output,
                owners: owners.to_vec(),
            }),
        }
    }

    /// Sets the hold of `output`; [`Outputs::save`] keeps it.
    fn set_hold(&self, output: u8, hold: Option<Hold>) {
        self.published.send_modify(|holds| match hold {
            Some(h) => {
                holds.insert(output, h);
            }
            None => {
                holds.remove(&output);
            }
        });
    }

    /// Keeps the timed holds in the state store.
    fn save(&self) {
        let timed: BTreeMap<u8, Hold> = self
            .published
            .borrow()
            .iter()
            .filter(|(_, h)| h.off_at_ms.is_some())
            .map(|(&o, h)| (o, h.clone()))
            .collect();
        let bytes = serde_json::to_vec(&timed).expect("holds serialize");
        if let Err(e) = self.state.set_record(RECORD, &bytes) {
            warn!("keeping the timed outputs: {e}");
        }
    }

    /// Releases every latched hold, leaving the outputs as they are (a
    /// factory reset: the plugins that held them forget that they did).
    /// Timed ones still end at their time.
    pub fn release_latched(&self) {
        let _guard = self.lock.lock().unwrap();
        self.published.send_if_modified(|holds| {
            let before = holds.len();
            holds.retain(|_, h| h.off_at_ms.is_some());
            holds.len() != before
        });
    }

    /// Takes up the timed outputs of before a restart: one whose time has
    /// not come is switched on again for the rest of it; one whose time
    /// passed is switched off. Returns what was done, to emit.
    pub fn restore(&self) -> Vec<Action> {
        let saved: BTreeMap<u8, Hold> = match self.state.record(RECORD) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!("the record of timed outputs is unreadable, they are switched off: {e}");
                BTreeMap::new()
            }),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                warn!("reading the timed outputs: {e}");
                BTreeMap::new()
            }
        };
        let _guard = self.lock.lock().unwrap();
        let now = now_ms();
        let mut actions = Vec::new();
        for (output, mut hold) in saved {
            // Never longer than a timed switch may run (a record kept while
            // the clock was ahead, or edited), and by the config as it is
            // now: a source that is no longer an owner holds nothing.
            let left = hold
                .off_at_ms
                .map_or(0, |at| at.saturating_sub(now))
                .min(u64::from(larm_rules::outputs::MAX_MS));
            let rank = self.rank_of(&hold.by, output);
            if let Err(e) = &rank {
                info!(
                    "output {output}: its timed switch by {} ends: {e}",
                    hold.by.escape_debug()
                );
            }
            let on = left > 0 && rank.is_ok();
            hold.rank = rank.unwrap_or(None);
            hold.off_at_ms = Some(now + left);
            hold.ends = Some(crate::unit::now() + Duration::from_millis(left));
            if let Err(e) = self.board.set_output(OutputId(output), on) {
                warn!("output {output}: taking up its timed switch: {e}");
                continue;
            }
            if on {
                info!(
                    "output {output} on again after the restart, for the rest of its time (by {})",
                    hold.by.escape_debug()
                );
            } else {
                info!(
                    "output {output}: its time (by {}) ended while larmd was stopped; off",
                    hold.by.escape_debug()
                );
            }
            actions.push(Action::Output {
                by: hold.by.clone(),
                output,
                on,
            });
            self.published.send_modify(|holds| {
                if on {
                    holds.insert(output, hold);
                }
            });
        }
        self.save();
        actions
    }

    /// When the next timed output ends.
    pub fn next_end(&self) -> Option<Instant> {
        self.published
            .borrow()
            .values()
            .filter_map(|h| h.ends)
            .min()
    }

    /// Switches off the timed outputs whose time has come; the actions to
    /// emit.
    pub fn end_due(&self) -> Vec<Action> {
        let _guard = self.lock.lock().unwrap();
        let now = crate::unit::now();
        let due: Vec<(u8, String)> = self
            .published
            .borrow()
            .iter()
            .filter(|(_, h)| h.ends.is_some_and(|at| at <= now))
            .map(|(&o, h)| (o, h.by.clone()))
            .collect();
        let mut actions = Vec::new();
        for (output, by) in due {
            if let Err(e) = self.board.set_output(OutputId(output), false) {
                // Still on, still held: tried again shortly.
                warn!("output {output}: ending its time: {e}; trying again in {RETRY:?}");
                self.published.send_modify(|holds| {
                    if let Some(h) = holds.get_mut(&output) {
                        h.ends = Some(now + RETRY);
                    }
                });
                continue;
            }
            self.set_hold(output, None);
            actions.push(Action::Output {
                by,
                output,
                on: false,
            });
        }
        if !actions.is_empty() {
            self.save();
        }
        actions
    }
}

/// Ends the unit's timed outputs at their time, for as long as it runs. It
/// sleeps until the next end, and wakes when the holds change.
pub async fn end_timed(shared: Arc<Shared>) {
    let mut holds = shared.outputs.holds();
    loop {
        // Board I/O and a durable write: off the async threads.
        let ending = shared.clone();
        let ended = tokio::task::spawn_blocking(move || ending.outputs.end_due()).await;
        shared.emit_all(ended.unwrap_or_default());
        holds.mark_unchanged();
        let next = shared.outputs.next_end();
        tokio::select! {
            () = crate::unit::sleep_until(next) => {}
            changed = holds.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_bridge::board::SimBoard;

    fn outputs(owners: &[(u8, &[&str])]) -> (Outputs, Arc<dyn Board>, Arc<State>) {
        let board: Arc<dyn Board> = Arc::new(SimBoard::new(8, 5));
        let state = Arc::new(State::in_memory().unwrap());
        let owners = owners
            .iter()
            .map(|(o, names)| (*o, names.iter().map(|n| n.to_string()).collect()))
            .collect();
        (
            Outputs::new(board.clone(), state.clone(), owners),
            board,
            state,
        )
    }

    /// A higher owner's hold refuses a lower one, on and off; an equal or
    /// higher one may switch; off releases the output.
    #[test]
    fn a_hold_refuses_lower_priorities_until_released() {
        let (outputs, board, _) = outputs(&[(5, &["input-rules", "sms-commands"])]);
        outputs.switch("input-rules", 5, Switch::On).unwrap();
        for switch in [Switch::On, Switch::Off] {
            let refused = outputs.switch("sms-commands", 5, switch).unwrap_err();
            assert!(matches!(&refused, OutputError::Held { by, .. } if by == "input-rules"));
        }
        assert!(board.read_output(OutputId(5)).unwrap());
        outputs.switch("input-rules", 5, Switch::Off).unwrap();
        assert!(outputs.holds().borrow().is_empty());
        outputs.switch("sms-commands", 5, Switch::On).unwrap();
        // The higher one takes the output over.
        outputs.switch("input-rules", 5, Switch::On).unwrap();
        assert_eq!(outputs.holds().borrow()[&5].by, "input-rules");
        let refused = outputs.switch("http", 5, Switch::On).unwrap_err();
        assert!(matches!(refused, OutputError::NotOwner { .. }), "{refused}");
    }

    /// A factory reset releases latched holds, not timed ones, and
    /// switches nothing.
    #[test]
    fn a_factory_reset_releases_latched_holds() {
        let (outputs, board, _) = outputs(&[(5, &["input-rules", "sms-commands"])]);
        outputs.switch("input-rules", 5, Switch::On).unwrap();
        outputs
            .switch("input-rules", 4, Switch::OnFor(Duration::from_secs(60)))
            .unwrap();
        outputs.release_latched();
        assert!(board.read_output(OutputId(5)).unwrap());
        assert_eq!(outputs.holds().borrow().keys().collect::<Vec<_>>(), [&4]);
        outputs.switch("sms-commands", 5, Switch::Off).unwrap();
    }

    /// Without owners, the last switch wins.
    #[test]
    fn without_owners_the_last_switch_wins() {
        let (outputs, board, _) = outputs(&[]);
        outputs.switch("a", 2, Switch::On).unwrap();
        outputs.switch("b", 2, Switch::Off).unwrap();
        assert!(!board.read_output(OutputId(2)).unwrap());
    }

    /// A timed output ends when due, is kept across a restart, and one
    /// whose time passed is switched off at the restart.
    #[test]
    fn timed_outputs_end_and_survive_a_restart() {
        let (outputs, board, state) = outputs(&[]);
        assert!(matches!(
            outputs.switch("a", 1, Switch::OnFor(Duration::from_millis(10))),
            Err(OutputError::Time(_))
        ));
        outputs
            .switch("a", 1, Switch::OnFor(Duration::from_millis(150)))
            .unwrap();
        outputs
            .switch("b", 2, Switch::OnFor(Duration::from_secs(3600)))
            .unwrap();
        assert!(outputs.next_end().unwrap() <= Instant::now() + Duration::from_millis(150));
        // A restart: a new board (all off) over the same state.
        let board2: Arc<dyn Board> = Arc::new(SimBoard::new(8, 5));
        let again = Outputs::new(board2.clone(), state.clone(), BTreeMap::new());
        std::thread::sleep(Duration::from_millis(200));
        let taken_up = again.restore();
        assert_eq!(taken_up.len(), 2);
        assert!(
            !board2.read_output(OutputId(1)).unwrap(),
            "ended while stopped"
        );
        assert!(
            board2.read_output(OutputId(2)).unwrap(),
            "its hour is not over"
        );
        assert!(again.end_due().is_empty());
        assert!(again.next_end().unwrap() > Instant::now() + Duration::from_secs(3500));
        // The first unit's timer, due now, ends its output.
        assert_eq!(outputs.end_due().len(), 1);
        assert!(!board.read_output(OutputId(1)).unwrap());
    }

    /// The unit's timer task wakes for a shorter timer set while it sleeps
    /// on a longer one.
    #[tokio::test]
    async fn a_shorter_timer_wakes_the_task() {
        let board: Arc<dyn Board> = Arc::new(SimBoard::new(8, 5));
        let (shared, mut actions) = Shared::in_memory(board).unwrap();
        tokio::spawn(end_timed(shared.clone()));
        let long = shared
            .outputs
            .switch("a", 1, Switch::OnFor(Duration::from_secs(3600)));
        shared.emit(long.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let short = shared
            .outputs
            .switch("a", 2, Switch::OnFor(Duration::from_millis(200)));
        shared.emit(short.unwrap());
        let off = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                for action in actions.recv().await.unwrap() {
                    if let Action::Output {
                        output, on: false, ..
                    } = action
                    {
                        return output;
                    }
                }
            }
        })
        .await
        .expect("the short timer never ended");
        assert_eq!(off, 2);
        assert!(shared.board.read_output(OutputId(1)).unwrap());
    }
}
