//! The four status LEDs and their blink codes, exactly as the table in docs/unit.md
//! says. The engine is pure: it takes the unit's state and a time and says
//! which LEDs are lit, and when that next changes. [`drive`] plays it on a
//! board.
//!
//! | LED    | steady                          | flashing                                   |
//! |--------|---------------------------------|--------------------------------------------|
//! | blue   | server connection active        | signal strength, 1-5 blinks                |
//! | green  | SMS received (5 s)              | network type: 1 blink LTE, 2 blinks GSM    |
//! | yellow | sending SMS / dialled alarm     |                                            |
//! | red    | corrupt configuration           | error codes 1-6 and 10 (see [`ErrorCode`]) |
//!
//! How conditions share an LED:
//! - **Steady wins over flashing** on the same LED: blue is steady while the
//!   server link is up (signal is not shown then), green is steady for 5 s
//!   after an SMS arrives and then goes back to the network type, red is
//!   steady for a corrupt configuration whatever the error codes.
//! - **Several error codes** are shown one after another, lowest first: each
//!   code is a group of blinks followed by a pause, then the next code, and
//!   round again.
//!
//! Timing, chosen so a person can count: each blink is [`BLINK_ON`] on and
//! [`BLINK_OFF`] off; a group (one code, the signal bars, the network type)
//! is followed by [`PAUSE`] dark before it repeats or the next code starts.
//! A pattern that changes starts with that pause, then its first group, so
//! its first blink is never mistaken for the end of what was shown before.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use crate::board::{Board, Led};

/// How long a blink is lit.
pub const BLINK_ON: Duration = Duration::from_millis(300);
/// How long the LED is dark between blinks of a group.
pub const BLINK_OFF: Duration = Duration::from_millis(300);
/// The dark pause after each group of blinks.
pub const PAUSE: Duration = Duration::from_millis(1500);
/// How long green stays lit after an SMS arrives.
pub const SMS_RECEIVED: Duration = Duration::from_secs(5);

/// The red LED's error codes: the number is the number of blinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// 1: low signal strength.
    LowSignal = 1,
    /// 2: error on the SIM card, or the SIM is protected by a code.
    Sim = 2,
    /// 3: no network.
    NoNetwork = 3,
    /// 4: LTE modem error (not initialised).
    Modem = 4,
    /// 5: card for extended I/O missing / no contact.
    ExtendedIo = 5,
    /// 6: no connection with the server.
    Server = 6,
    /// 10: unknown internal error; restart the unit.
    Internal = 10,
}

impl ErrorCode {
    /// Blinks per group.
    pub fn blinks(self) -> u8 {
        self as u8
    }

    /// Its name for programs, e.g. `sim-error`.
    pub fn name(self) -> &'static str {
        match self {
            Self::LowSignal => "low-signal",
            Self::Sim => "sim-error",
            Self::NoNetwork => "no-network",
            Self::Modem => "modem-error",
            Self::ExtendedIo => "extended-io-missing",
            Self::Server => "no-server",
            Self::Internal => "internal-error",
        }
    }

    /// The description in docs/unit.md.
    pub fn description(self) -> &'static str {
        match self {
            Self::LowSignal => "low signal strength",
            Self::Sim => "SIM card error or PIN",
            Self::NoNetwork => "no network",
            Self::Modem => "modem error",
            Self::ExtendedIo => "extended I/O card missing",
            Self::Server => "no connection with the server",
            Self::Internal => "internal error, restart the unit",
        }
    }
}

/// The network the modem is on, for the green LED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Network {
    /// Not registered: green is dark.
    #[default]
    None,
    /// 2G: two blinks.
    Gsm,
    /// 4G: one blink.
    Lte,
}

/// What the LEDs show.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UnitState {
    /// The server connection is up (blue steady).
    pub server_connected: bool,
    /// Signal strength in bars, 0-5 (blue flashing; 0 = dark).
    pub signal_bars: u8,
    /// Registered network (green flashing).
    pub network: Network,
    /// When the last SMS arrived (green steady for 5 s).
    pub sms_received: Option<Instant>,
    /// An SMS is being sent or an alarm call dialled (yellow).
    pub busy: bool,
    /// The configuration is corrupt (red steady).
    pub config_corrupt: bool,
    /// Active error codes (red flashing).
    pub errors: BTreeSet<ErrorCode>,
}

/// What one LED does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Dark.
    Off,
    /// Lit.
    Steady,
    /// Groups of blinks, shown in turn, each followed by a pause.
    Blink(Vec<u8>),
}

impl Pattern {
    /// Its name for programs and logs: `off`, `steady` or `blink`.
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Off => "off",
            Pattern::Steady => "steady",
            Pattern::Blink(_) => "blink",
        }
    }

    /// Its groups of blinks, in turn; none unless blinking.
    pub fn groups(&self) -> &[u8] {
        match self {
            Pattern::Blink(groups) => groups,
            _ => &[],
        }
    }

    fn period(groups: &[u8]) -> Duration {
        groups
            .iter()
            .map(|&n| (BLINK_ON + BLINK_OFF) * u32::from(n) + PAUSE)
            .sum()
    }

    /// Whether the LED is lit `t` after the pattern started, and how long
    /// until that changes (None: never).
    fn at(&self, t: Duration) -> (bool, Option<Duration>) {
        let groups = match self {
            Pattern::Off => return (false, None),
            Pattern::Steady => return (true, None),
            Pattern::Blink(groups) => groups,
        };
        let period = Self::period(groups);
        // Start in the pause that ends the cycle.
        let t = t + period - PAUSE;
        let mut t = Duration::from_nanos((t.as_nanos() % period.as_nanos()) as u64);
        for &n in groups {
            for _ in 0..n {
                if t < BLINK_ON {
                    return (true, Some(BLINK_ON - t));
                }
                t -= BLINK_ON;
                if t < BLINK_OFF {
                    return (false, Some(BLINK_OFF - t));
                }
                t -= BLINK_OFF;
            }
            if t < PAUSE {
                return (false, Some(PAUSE - t));
            }
            t -= PAUSE;
        }
        unreachable!("t is within one period")
    }
}

/// The LEDs in board order.
pub const LEDS: [Led; 4] = [Led::Blue, Led::Green, Led::Yellow, Led::Red];

/// Turns the unit's state into LED patterns over time.
#[derive(Debug)]
pub struct LedEngine {
    state: UnitState,
    patterns: [(Pattern, Instant); 4],
}

impl LedEngine {
    /// An engine showing `state` from `now`.
    pub fn new(state: UnitState, now: Instant) -> Self {
        let mut engine = Self {
            state,
            patterns: std::array::from_fn(|_| (Pattern::Off, now)),
        };
        engine.refresh(now);
        engine
    }

    /// Shows a new state from `now`.
    pub fn update(&mut self, state: UnitState, now: Instant) {
        self.state = state;
        self.refresh(now);
    }

    /// The state shown.
    pub fn state(&self) -> &UnitState {
        &self.state
    }

    /// What `led` should do for the current state at `now`.
    pub fn pattern_for(&self, led: Led, now: Instant) -> Pattern {
        let s = &self.state;
        match led {
            Led::Blue if s.server_connected => Pattern::Steady,
            Led::Blue if s.signal_bars > 0 => Pattern::Blink(vec![s.signal_bars.min(5)]),
            Led::Green
                if s.sms_received
                    .is_some_and(|at| now >= at && now - at < SMS_RECEIVED) =>
            {
                Pattern::Steady
            }
            Led::Green => match s.network {
                Network::Lte => Pattern::Blink(vec![1]),
                Network::Gsm => Pattern::Blink(vec![2]),
                Network::None => Pattern::Off,
            },
            Led::Yellow if s.busy => Pattern::Steady,
            Led::Red if s.config_corrupt => Pattern::Steady,
            Led::Red if !s.errors.is_empty() => {
                Pattern::Blink(s.errors.iter().map(|e| e.blinks()).collect())
            }
            _ => Pattern::Off,
        }
    }

    /// Restarts the pattern of every LED whose pattern changed.
    fn refresh(&mut self, now: Instant) {
        for (i, led) in LEDS.into_iter().enumerate() {
            let pattern = self.pattern_for(led, now);
            if pattern != self.patterns[i].0 {
                self.patterns[i] = (pattern, now);
            }
        }
    }

    /// The current pattern of `led`.
    pub fn pattern(&self, led: Led) -> &Pattern {
        &self.patterns[led as usize].0
    }

    /// Which LEDs are lit at `now` (blue, green, yellow, red).
    pub fn levels(&mut self, now: Instant) -> [bool; 4] {
        self.refresh(now);
        std::array::from_fn(|i| {
            let (pattern, start) = &self.patterns[i];
            pattern.at(now.saturating_duration_since(*start)).0
        })
    }

    /// When any LED next changes after `now`, if ever.
    pub fn next_change(&mut self, now: Instant) -> Option<Instant> {
        self.refresh(now);
        let next = self
            .patterns
            .iter()
            .filter_map(|(pattern, start)| pattern.at(now.saturating_duration_since(*start)).1)
            .min()
            .map(|d| now + d);
        match (next, self.next_pattern_change(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When a pattern changes by time alone (green's steady SMS light ends),
    /// not by a blink: what a display of the patterns in words waits for.
    pub fn next_pattern_change(&self, now: Instant) -> Option<Instant> {
        let end = self.state.sms_received? + SMS_RECEIVED;
        (end > now).then_some(end)
    }

    /// When the current pattern of `led` started: its first group of
    /// blinks begins [`PAUSE`] after this.
    pub fn since(&self, led: Led) -> Instant {
        self.patterns[led as usize].1
    }

    /// What the pattern of `led` means, for programs: the error codes' names
    /// for red (several when it shows several), one word for the others
    /// (`signal`, `lte`, `gsm`, `server-connected`, `sms-received`,
    /// `busy`, `config-corrupt`); none when it is dark.
    pub fn codes(&self, led: Led) -> Vec<&'static str> {
        let code = match (led, self.pattern(led)) {
            (_, Pattern::Off) => return Vec::new(),
            (Led::Red, Pattern::Blink(_)) => {
                return self.state.errors.iter().map(|e| e.name()).collect();
            }
            (Led::Blue, Pattern::Steady) => "server-connected",
            (Led::Blue, Pattern::Blink(_)) => "signal",
            (Led::Green, Pattern::Steady) => "sms-received",
            (Led::Green, Pattern::Blink(g)) if g[0] == 1 => "lte",
            (Led::Green, Pattern::Blink(_)) => "gsm",
            (Led::Yellow, _) => "busy",
            (Led::Red, Pattern::Steady) => "config-corrupt",
        };
        vec![code]
    }

    /// The LEDs in words, e.g. `red: 3 blinks (no network)`.
    pub fn describe(&self, led: Led) -> String {
        format!("{led}: {}", self.words(led))
    }

    /// What `led` shows in words, without its name: `3 blinks (no network)`.
    pub fn words(&self, led: Led) -> String {
        let s = &self.state;
        match (led, self.pattern(led)) {
            (_, Pattern::Off) => "off".to_string(),
            (Led::Blue, Pattern::Steady) => "steady (server connected)".into(),
            (Led::Blue, Pattern::Blink(g)) => format!("{} blinks (signal strength)", g[0]),
            (Led::Green, Pattern::Steady) => "steady (SMS received)".into(),
            (Led::Green, Pattern::Blink(g)) => {
                format!(
                    "{} (network)",
                    if g[0] == 1 {
                        "1 blink, LTE"
                    } else {
                        "2 blinks, GSM"
                    }
                )
            }
            (Led::Yellow, _) => "steady (sending SMS / dialling)".into(),
            (Led::Red, Pattern::Steady) => "steady (corrupt configuration)".into(),
            (Led::Red, Pattern::Blink(_)) => s
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{} blink{} ({})",
                        e.blinks(),
                        if e.blinks() == 1 { "" } else { "s" },
                        e.description()
                    )
                })
                .collect::<Vec<_>>()
                .join(", then "),
        }
    }
}

impl fmt::Display for Led {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Led::Blue => "blue",
            Led::Green => "green",
            Led::Yellow => "yellow",
            Led::Red => "red",
        })
    }
}

/// Plays the engine on `board`'s LEDs, following state updates from
/// `states`, until the sender is dropped. Time is tokio's, so tests can run
/// it on a paused clock.
pub async fn drive(
    board: std::sync::Arc<dyn Board>,
    mut states: tokio::sync::watch::Receiver<UnitState>,
) {
    let clock = || tokio::time::Instant::now().into_std();
    let mut engine = LedEngine::new(states.borrow_and_update().clone(), clock());
    let mut shown: [Option<bool>; 4] = [None; 4];
    loop {
        let now = clock();
        for (i, on) in engine.levels(now).into_iter().enumerate() {
            if shown[i] != Some(on) {
                if let Err(e) = board.set_led(LEDS[i], on) {
                    tracing::warn!("{} LED: {e}", LEDS[i]);
                }
                shown[i] = Some(on);
            }
        }
        let wake = engine.next_change(now);
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    return;
                }
                engine.update(states.borrow_and_update().clone(), clock());
            }
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
