//! The wrong-password guard. SMS senders can be spoofed, so a throttle per
//! sender alone lets a guesser who rotates numbers try thousands of
//! passwords. Two limits apply:
//!
//! - per sender: `[sms] password_failures` wrong passwords, then the sender
//!   is ignored for `lockout_s`. At most [`MAX_SENDERS`] senders are
//!   tracked; the stalest are forgotten first.
//! - per unit: `unit_password_failures` wrong passwords from anyone within
//!   `unit_window_s`, then every password is refused for `lockout_s`,
//!   except from the `trusted` numbers (still throttled per sender, since
//!   they can be spoofed too).
//!
//! A refused password is told `false` without being checked, so a guesser
//! cannot tell a lockout from a wrong guess.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larm_rules::PhoneNumber;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Shared;
use crate::config::SmsConfig;
use crate::plugins::bindings::larm::plugin::types::PluginState;
use crate::state::StateError;

/// The most senders whose wrong passwords are remembered.
pub const MAX_SENDERS: usize = 256;

/// Guards password checks (see the module doc).
pub struct PasswordGuard {
    inner: Mutex<Inner>,
    sender_failures: u32,
    unit_failures: u32,
    window: Duration,
    lockout: Duration,
    trusted: Vec<PhoneNumber>,
    /// Until when the whole unit is locked out; the status and the
    /// server's health events follow it.
    unit_locked_until: watch::Sender<Option<Instant>>,
}

#[derive(Default)]
struct Inner {
    senders: HashMap<String, Throttle>,
    /// When the unit's recent wrong passwords came, oldest first.
    recent: VecDeque<Instant>,
}

struct Throttle {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

impl PasswordGuard {
    /// A guard with the limits of `[sms]`.
    pub fn new(config: &SmsConfig) -> Self {
        Self {
            inner: Mutex::default(),
            sender_failures: config.password_failures.get(),
            unit_failures: config.unit_password_failures.get(),
            window: Duration::from_secs(config.unit_window_s.get()),
            lockout: Duration::from_secs(config.lockout_s),
            trusted: config.trusted.clone(),
            unit_locked_until: watch::Sender::new(None),
        }
    }

    /// How long the unit-wide lockout still lasts; None when not locked.
    pub fn lockout_left(&self) -> Option<Duration> {
        let until = (*self.unit_locked_until.borrow())?;
        Some(until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Checks `candidate` from `sender` with `matches`; `false` without a
    /// check while the sender, or the unit for an untrusted sender, is
    /// locked out.
    pub fn verify(
        &self,
        sender: &str,
        matches: impl FnOnce() -> Result<bool, StateError>,
    ) -> Result<bool, StateError> {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        let trusted = self.trusted.iter().any(|t| t.matches(sender));
        if !trusted && self.lockout_left().is_some() {
            warn!(sender, "unit-wide password lockout: ignoring the sender");
            return Ok(false);
        }
        if inner
            .senders
            .get(sender)
            .and_then(|t| t.until)
            .is_some_and(|until| now < until)
        {
            warn!(sender, "ignoring throttled sender");
            return Ok(false);
        }
        let ok = matches()?;
        if ok {
            inner.senders.remove(sender);
            return Ok(true);
        }
        self.sender_failed(&mut inner, sender, now);
        self.unit_failed(&mut inner, now);
        Ok(false)
    }

    fn sender_failed(&self, inner: &mut Inner, sender: &str, now: Instant) {
        if !inner.senders.contains_key(sender) && inner.senders.len() >= MAX_SENDERS {
            self.forget_stalest(inner, now);
        }
        let entry = inner.senders.entry(sender.to_string()).or_insert(Throttle {
            failures: 0,
            last: now,
            until: None,
        });
        // Wrong passwords long ago do not count towards a lockout now.
        if now.duration_since(entry.last) > self.window {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last = now;
        warn!(sender, failures = entry.failures, "wrong password");
        if entry.failures >= self.sender_failures {
            entry.failures = 0;
            entry.until = Some(now + self.lockout);
            warn!(
                sender,
                "too many wrong passwords: sender ignored for {:?}", self.lockout
            );
        }
    }

    /// Makes room for one more sender: forgets those whose lockout is over
    /// and whose guesses are older than the window, else the stalest one.
    fn forget_stalest(&self, inner: &mut Inner, now: Instant) {
        let window = self.window;
        inner.senders.retain(|_, t| {
            t.until.is_some_and(|until| now < until) || now.duration_since(t.last) <= window
        });
        if inner.senders.len() >= MAX_SENDERS
            && let Some(stalest) = inner
                .senders
                .iter()
                .min_by_key(|(_, t)| t.until.unwrap_or(t.last))
                .map(|(s, _)| s.clone())
        {
            inner.senders.remove(&stalest);
        }
    }

    fn unit_failed(&self, inner: &mut Inner, now: Instant) {
        inner.recent.push_back(now);
        while inner
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= self.unit_failures as usize {
            inner.recent.clear();
            self.unit_locked_until
                .send_replace(Some(now + self.lockout));
            error!(
                "{} wrong passwords within {:?}: every password command is ignored for {:?}, \
                 except from [sms] trusted numbers",
                self.unit_failures, self.window, self.lockout
            );
        }
    }

    /// Senders tracked now (bounded by [`MAX_SENDERS`]).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.inner.lock().unwrap().senders.len()
    }
}

/// Tells the server when a unit-wide lockout starts (someone is guessing
/// the password) and when it ends, on the health events of `password`.
/// It ends with the unit, which it holds only while it reports.
pub fn report_lockouts(shared: &Arc<Shared>) -> impl Future<Output = ()> + use<> {
    let mut locks = shared.password.unit_locked_until.subscribe();
    let unit = Arc::downgrade(shared);
    let report = move |state, faults, why: String| match unit.upgrade() {
        Some(shared) => {
            shared.report_health("password", state, faults, why);
            true
        }
        None => false,
    };
    let guard = &shared.password;
    let (failures, window, lockout) = (guard.unit_failures, guard.window, guard.lockout);
    async move {
        loop {
            let until = *locks.borrow_and_update();
            if let Some(until) = until.filter(|t| *t > Instant::now()) {
                let why = format!(
                    "{failures} wrong passwords within {} s: password commands are refused \
                     for {} s, except from [sms] trusted numbers",
                    window.as_secs(),
                    lockout.as_secs()
                );
                if !report(PluginState::Quarantined, failures, why) {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(until.into()) => {
                        info!("the unit-wide password lockout is over");
                        if !report(PluginState::Running, 0, "the password lockout is over".into()) {
                            return;
                        }
                    }
                    // Extended by a trusted number's wrong passwords.
                    _ = locks.changed() => continue,
                }
            }
            if locks.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU32, NonZeroU64};

    use super::*;

    fn guard(trusted: &[&str]) -> PasswordGuard {
        PasswordGuard::new(&SmsConfig {
            password_failures: NonZeroU32::new(3).unwrap(),
            unit_password_failures: NonZeroU32::new(10).unwrap(),
            unit_window_s: NonZeroU64::new(600).unwrap(),
            lockout_s: 600,
            trusted: trusted
                .iter()
                .map(|n| PhoneNumber::parse(n).unwrap())
                .collect(),
            ..SmsConfig::default()
        })
    }

    fn guess(guard: &PasswordGuard, sender: &str, right: bool) -> bool {
        guard.verify(sender, || Ok(right)).unwrap()
    }

    #[test]
    fn a_sender_is_locked_out_after_its_failures() {
        let g = guard(&[]);
        for _ in 0..3 {
            assert!(!guess(&g, "+461", false));
        }
        assert!(
            !guess(&g, "+461", true),
            "locked out: even right is refused"
        );
        assert!(guess(&g, "+462", true), "others are not");
    }

    #[test]
    fn rotating_senders_spend_the_unit_budget_but_trusted_numbers_still_work() {
        let g = guard(&["+46709999999"]);
        for i in 0..10 {
            assert!(!guess(&g, &format!("+4670{i:07}"), false));
        }
        assert!(!guess(&g, "+46701111111", true), "the unit is locked out");
        assert!(guess(&g, "+46709999999", true), "a trusted number is not");
    }

    #[test]
    fn the_sender_table_stays_bounded() {
        let g = PasswordGuard::new(&SmsConfig {
            unit_password_failures: NonZeroU32::new(u32::MAX).unwrap(),
            ..SmsConfig::default()
        });
        for i in 0..10_000 {
            guess(&g, &format!("+46{i:09}"), false);
        }
        assert_eq!(g.tracked(), MAX_SENDERS);
    }

    async fn health(
        actions: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<crate::unit::Action>>,
    ) -> crate::plugins::bindings::larm::plugin::types::PluginHealth {
        use crate::plugins::bindings::larm::plugin::types::Report;
        match actions.recv().await.unwrap().pop().unwrap() {
            crate::unit::Action::Report {
                report: Report::PluginHealth(h),
                ..
            } => h,
            other => panic!("{other:?}"),
        }
    }

    /// The server hears of a lockout when it starts and when it ends, and
    /// the status shows it meanwhile.
    #[tokio::test]
    async fn a_lockout_is_reported_and_shown() {
        let board = Arc::new(firmware_bridge::board::SimBoard::new(2, 2));
        let outbox = crate::outbox::Outbox::in_memory(
            vec![crate::config::Step::Server],
            Duration::from_secs(60),
        );
        let state = crate::state::State::in_memory().unwrap();
        let (tx, mut actions) = tokio::sync::mpsc::unbounded_channel();
        let mut shared = Shared::new(board, Arc::new(state), Arc::new(outbox.unwrap()), tx);
        shared.password = PasswordGuard::new(&SmsConfig {
            unit_password_failures: NonZeroU32::new(2).unwrap(),
            lockout_s: 1,
            ..SmsConfig::default()
        });
        let shared = Arc::new(shared);
        tokio::spawn(report_lockouts(&shared));
        assert_eq!(shared.device_status().password_lockout_s, None);
        guess(&shared.password, "+461", false);
        guess(&shared.password, "+462", false);
        assert_eq!(shared.device_status().password_lockout_s, Some(1));
        let started = health(&mut actions).await;
        assert_eq!(
            (started.name.as_str(), started.state),
            ("password", PluginState::Quarantined)
        );
        assert!(started.last_fault.unwrap().contains("2 wrong passwords"));
        let ended = health(&mut actions).await;
        assert_eq!(ended.state, PluginState::Running);
        assert_eq!(shared.device_status().password_lockout_s, None);
    }
}
