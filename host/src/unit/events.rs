//! The unit's live events: every change a person watching the unit wants
//! to see (inputs, outputs, LEDs, modem, server link, outbox, plugins,
//! settings, SMS in and out, calls, alarms), numbered and kept in a bounded
//! ring, so the web panel's event stream (`GET /api/v1/events`) can resume
//! after a reconnect from the last id it saw, without gaps.
//!
//! Written here rather than on tokio's `broadcast`: a broadcast receiver
//! sees only what is sent after it subscribes, and a client that comes
//! back needs what it missed, by id. The ring is a `VecDeque` behind a
//! mutex and a `watch` of the newest id; a slow reader never holds a
//! writer, it falls behind and is told so ([`Since::Gap`]).
//!
//! Ids are `RUN-SEQ`: `RUN` is new at each start of larmd, so an id from
//! before a restart is never taken for one of this run's.
//!
//! The event loop publishes what passes through it (edges, SMS, actions);
//! [`follow`] publishes the changes of the state channels.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firmware_bridge::board::Led;
use firmware_bridge::leds::{self, LedEngine, UnitState};
use serde::Serialize;
use tokio::sync::watch;

use super::Shared;
use crate::modem::ModemStatus;
use crate::plugins::bindings::larm::plugin::types::PluginHealth;

/// How many events the ring keeps: some minutes of a busy unit.
pub const CAPACITY: usize = 1024;

/// One thing that happened, as the event stream sends it (`type` names
/// the kind; numbers and texts of SMS and calls are left out when the API
/// has no token: see [`Event::redacted`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// An input's contact changed (debounced).
    Input {
        /// Which input.
        input: u8,
        /// Closed to COM.
        closed: bool,
        /// The contact is in alarm by the input's wiring (NO/NC), its delay
        /// aside: whether the alarm fires is the rule plugin's to say.
        alarm: bool,
    },
    /// An output was switched.
    Output {
        /// Which output.
        output: u8,
        /// Its new state.
        on: bool,
        /// Who switched it.
        by: String,
        /// Who holds it now (none when off).
        held_by: Option<String>,
        /// When it switches off by itself (ms since the Unix epoch).
        off_at_ms: Option<u64>,
    },
    /// What the four LEDs show changed (not each blink).
    Leds {
        /// Blue, green, yellow, red.
        leds: Vec<LedView>,
    },
    /// The modem's status changed; none: the unit has no modem.
    Modem {
        /// The new status.
        modem: Option<ModemView>,
    },
    /// The server link changed.
    Server {
        /// Connected right now.
        connected: bool,
        /// The last attempt to sync failed.
        failing: bool,
    },
    /// The outbox's depth changed.
    Outbox {
        /// Entries not yet acknowledged.
        depth: u32,
        /// Age of the oldest, in seconds.
        oldest_s: Option<u64>,
    },
    /// The extended I/O card was pulled or put back.
    Card {
        /// `present`, `missing` or `notfitted` (no card configured).
        extended_io: String,
    },
    /// A plugin's state, faults or version changed.
    Plugins {
        /// Every plugin.
        plugins: Vec<PluginView>,
    },
    /// The device settings changed (by SMS, the server, the panel): read
    /// them with the status. Not carried here, as they hold the alarm
    /// numbers and can be large.
    Settings,
    /// An SMS came in.
    SmsIn {
        /// The sender's number.
        from: Option<String>,
        /// Its text.
        text: Option<String>,
    },
    /// An SMS was queued to be sent.
    SmsOut {
        /// The plugin that sent it.
        by: String,
        /// The recipient.
        to: Option<String>,
        /// Its text.
        text: Option<String>,
    },
    /// An alarm call was queued.
    Call {
        /// The plugin that asked.
        by: String,
        /// The number to dial.
        to: Option<String>,
    },
    /// A call rang in.
    IncomingCall {
        /// The caller, if the network told.
        from: Option<String>,
    },
    /// An input went into alarm.
    Alarm {
        /// Which input.
        input: u8,
        /// Its name.
        name: String,
        /// The alarm text.
        text: String,
    },
    /// An input was restored.
    Restore {
        /// Which input.
        input: u8,
        /// Its name.
        name: String,
        /// The restore text.
        text: String,
    },
}

impl Event {
    /// The kind, as the stream's `event:` field names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Input { .. } => "input",
            Event::Output { .. } => "output",
            Event::Leds { .. } => "leds",
            Event::Modem { .. } => "modem",
            Event::Server { .. } => "server",
            Event::Outbox { .. } => "outbox",
            Event::Card { .. } => "card",
            Event::Plugins { .. } => "plugins",
            Event::Settings => "settings",
            Event::SmsIn { .. } => "sms-in",
            Event::SmsOut { .. } => "sms-out",
            Event::Call { .. } => "call",
            Event::IncomingCall { .. } => "incoming-call",
            Event::Alarm { .. } => "alarm",
            Event::Restore { .. } => "restore",
        }
    }

    /// The event without phone numbers and message texts: what a client
    /// sees when the API is open to anyone on the network (no token).
    pub fn redacted(&self) -> Event {
        let mut event = self.clone();
        match &mut event {
            Event::SmsIn { from, text } => (*from, *text) = (None, None),
            Event::SmsOut { to, text, .. } => (*to, *text) = (None, None),
            Event::Call { to, .. } => *to = None,
            Event::IncomingCall { from } => *from = None,
            _ => {}
        }
        event
    }
}

/// An LED as data: what it shows, what that means, and its timing, so a
/// client draws it exactly as the unit does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedView {
    /// `blue`, `green`, `yellow` or `red`.
    pub colour: String,
    /// `off`, `steady` or `blink`.
    pub mode: &'static str,
    /// Blinks in the first group (0 unless blinking).
    pub count: u8,
    /// Every group of blinks, in the order shown (red shows each error code
    /// in turn, lowest first).
    pub groups: Vec<u8>,
    /// What it means, for programs (`sim-error`, `signal`, `lte`...); none
    /// when dark. The first of [`LedView::codes`].
    pub code: Option<&'static str>,
    /// Each meaning, one per group for red.
    pub codes: Vec<&'static str>,
    /// In words, as the console says it.
    pub text: String,
    /// How long each blink is lit.
    pub on_ms: u64,
    /// How long it is dark between the blinks of a group.
    pub off_ms: u64,
    /// The dark pause after each group.
    pub pause_ms: u64,
    /// How far into its pattern the LED was when this was taken: a pattern
    /// starts with the pause, then its first group.
    pub phase_ms: u64,
}

impl LedView {
    /// All four LEDs as `engine` shows them at `now`.
    pub fn all(engine: &LedEngine, now: Instant) -> Vec<LedView> {
        leds::LEDS
            .iter()
            .map(|&led| Self::of(engine, led, now))
            .collect()
    }

    fn of(engine: &LedEngine, led: Led, now: Instant) -> LedView {
        let pattern = engine.pattern(led);
        let groups = pattern.groups().to_vec();
        let codes = engine.codes(led);
        let ms = |d: Duration| d.as_millis() as u64;
        LedView {
            colour: led.to_string(),
            mode: pattern.name(),
            count: groups.first().copied().unwrap_or(0),
            groups,
            code: codes.first().copied(),
            codes,
            text: engine.words(led),
            on_ms: ms(leds::BLINK_ON),
            off_ms: ms(leds::BLINK_OFF),
            pause_ms: ms(leds::PAUSE),
            phase_ms: ms(now.saturating_duration_since(engine.since(led))),
        }
    }

    /// The same showing, whatever the phase: what makes a new event.
    fn same_showing(a: &[LedView], b: &[LedView]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(a, b)| (a.mode, &a.groups, &a.codes) == (b.mode, &b.groups, &b.codes))
    }
}

/// The modem, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModemView {
    /// It answers commands.
    pub answering: bool,
    /// `ready`, `pin-required`...
    pub sim: &'static str,
    /// 0-5.
    pub signal_bars: u8,
    /// `lte`, `gsm`, `umts` or `none`.
    pub network: &'static str,
    /// The operator's name.
    pub operator: Option<String>,
}

impl ModemView {
    /// The view of `status`.
    pub fn of(status: &ModemStatus) -> Self {
        ModemView {
            answering: status.answering,
            sim: status.sim.name(),
            signal_bars: status.signal_bars,
            network: status.network.name(),
            operator: status.operator.clone(),
        }
    }
}

/// A plugin, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginView {
    /// Its name in the config.
    pub name: String,
    /// `running`, `restarting`, `quarantined`...
    pub state: &'static str,
    /// Faults so far.
    pub faults: u32,
    /// The last one, in words.
    pub last_fault: Option<String>,
    /// The field component's version; none for the config's.
    pub version: Option<String>,
    /// A field update on probation.
    pub on_probation: bool,
}

impl From<PluginHealth> for PluginView {
    fn from(h: PluginHealth) -> Self {
        PluginView {
            name: h.name,
            state: h.state.name(),
            faults: h.faults,
            last_fault: h.last_fault,
            version: h.version,
            on_probation: h.on_probation,
        }
    }
}

/// An event with its id and time.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// Its place in this run, from 1.
    pub seq: u64,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
    /// When, on the monotonic clock the LEDs' phases count on.
    pub at: Instant,
    /// What.
    pub event: Event,
}

/// What a reader that last saw an id gets.
#[derive(Debug)]
pub enum Since {
    /// The events after it (none: it is up to date).
    Events(Vec<Stamped>),
    /// Some were lost (it fell more than [`CAPACITY`] behind, or its id is
    /// of another run): it should read the whole status again.
    Gap,
}

/// The ring of recent events.
pub struct Events {
    run: u64,
    ring: Mutex<VecDeque<Stamped>>,
    latest: watch::Sender<u64>,
    /// The LEDs as [`follow`] last saw them, and when: its engine changes
    /// patterns when the board's does, so their phases are the board's.
    leds: Mutex<Option<(Vec<LedView>, Instant)>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// An empty ring for a new run.
    pub fn new() -> Self {
        // Random per run (std's hasher keys are), so no two runs share ids
        // whatever the clock says.
        use std::hash::BuildHasher;
        Events {
            run: std::collections::hash_map::RandomState::new().hash_one(0u8) >> 1,
            ring: Mutex::new(VecDeque::with_capacity(CAPACITY)),
            latest: watch::Sender::new(0),
            leds: Mutex::new(None),
        }
    }

    /// The LEDs at `now`, in phase with the board's; none before the
    /// unit runs.
    pub fn leds(&self, now: Instant) -> Option<Vec<LedView>> {
        let (mut leds, at) = self.leds.lock().unwrap().clone()?;
        let later = now.saturating_duration_since(at).as_millis() as u64;
        for led in &mut leds {
            led.phase_ms += later;
        }
        Some(leds)
    }

    /// Adds an event; the oldest goes when the ring is full.
    pub fn publish(&self, event: Event) {
        let mut ring = self.ring.lock().unwrap();
        let seq = ring.back().map_or(1, |e| e.seq + 1);
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(Stamped {
            seq,
            at_ms: crate::outbox::now_ms(),
            at: Instant::now(),
            event,
        });
        // Under the lock, so the newest id never goes back.
        self.latest.send_replace(seq);
    }

    /// The id of `seq` of this run, as the stream sends it.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.run)
    }

    /// The newest event's id (`RUN-0` before the first).
    pub fn latest_id(&self) -> String {
        self.id(*self.latest.borrow())
    }

    /// Wakes when an event is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// The place in this run of `id`, if it is one of this run's.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        let (run, seq) = id.trim().split_once('-')?;
        (run.parse() == Ok(self.run)).then_some(())?;
        seq.parse().ok()
    }

    /// The events after `seq` of this run.
    pub fn since(&self, seq: u64) -> Since {
        let ring = self.ring.lock().unwrap();
        let latest = ring.back().map_or(0, |e| e.seq);
        let oldest = ring.front().map_or(latest + 1, |e| e.seq);
        if seq > latest || seq + 1 < oldest {
            return Since::Gap;
        }
        Since::Events(ring.iter().filter(|e| e.seq > seq).cloned().collect())
    }
}

/// Publishes the changes of the unit's state channels (LEDs, modem, server
/// link, outbox, card, plugins, settings) until the unit stops. It wakes
/// only on a change, and when green's steady light after an SMS ends.
pub async fn follow(shared: Arc<Shared>, mut led_state: watch::Receiver<UnitState>) {
    let events = &shared.events;
    let mut card = shared.board.card();
    let mut modem = shared.modem.subscribe();
    let mut link = shared.link.subscribe();
    let mut health = shared.health.subscribe();
    let mut field = shared.field.subscribe();
    let mut settings = shared.state.settings_version();
    let mut engine = LedEngine::new(led_state.borrow_and_update().clone(), Instant::now());
    // What was last published, so only changes go out; the first round
    // publishes nothing, as the status a client reads first has it all.
    let mut shown_leds = LedView::all(&engine, Instant::now());
    let mut shown_modem = shared.modem.borrow().as_ref().map(ModemView::of);
    let mut shown_link = *link.borrow_and_update();
    let mut shown_depth = shared.outbox.summary().depth;
    let mut shown_card = *card.borrow_and_update();
    let mut shown_plugins = plugin_views(&shared);
    let mut shown_settings = *settings.borrow_and_update();
    loop {
        let outbox_changed = shared.outbox.changed();
        tokio::pin!(outbox_changed);
        outbox_changed.as_mut().enable();

        let now = Instant::now();
        let leds = LedView::all(&engine, now);
        *events.leds.lock().unwrap() = Some((leds.clone(), now));
        if !LedView::same_showing(&leds, &shown_leds) {
            events.publish(Event::Leds { leds: leds.clone() });
            shown_leds = leds;
        }
        let modem_now = modem.borrow_and_update().as_ref().map(ModemView::of);
        if modem_now != shown_modem {
            events.publish(Event::Modem {
                modem: modem_now.clone(),
            });
            shown_modem = modem_now;
        }
        let link_now = *link.borrow_and_update();
        if link_now != shown_link {
            events.publish(Event::Server {
                connected: link_now.connected,
                failing: link_now.failing,
            });
            shown_link = link_now;
        }
        let outbox = shared.outbox.summary();
        if outbox.depth != shown_depth {
            events.publish(Event::Outbox {
                depth: outbox.depth,
                oldest_s: outbox.oldest_s,
            });
            shown_depth = outbox.depth;
        }
        let card_now = *card.borrow_and_update();
        if card_now != shown_card {
            events.publish(Event::Card {
                extended_io: card_word(card_now),
            });
            shown_card = card_now;
        }
        health.borrow_and_update();
        field.borrow_and_update();
        let plugins = plugin_views(&shared);
        if plugins != shown_plugins {
            events.publish(Event::Plugins {
                plugins: plugins.clone(),
            });
            shown_plugins = plugins;
        }
        let settings_now = *settings.borrow_and_update();
        if settings_now != shown_settings {
            shown_settings = settings_now;
            events.publish(Event::Settings);
        }

        let green_ends = engine.next_pattern_change(now);
        tokio::select! {
            r = led_state.changed() => {
                if r.is_err() {
                    return;
                }
                engine.update(led_state.borrow_and_update().clone(), Instant::now());
            }
            () = super::sleep_until(green_ends) => engine.update(engine.state().clone(), Instant::now()),
            r = card.changed() => if r.is_err() { return },
            r = modem.changed() => if r.is_err() { return },
            r = link.changed() => if r.is_err() { return },
            r = health.changed() => if r.is_err() { return },
            r = field.changed() => if r.is_err() { return },
            r = settings.changed() => if r.is_err() { return },
            () = &mut outbox_changed => {}
        }
    }
}

fn plugin_views(shared: &Shared) -> Vec<PluginView> {
    shared
        .plugin_health()
        .into_iter()
        .map(PluginView::from)
        .collect()
}

/// The extended card's state in one word.
pub fn card_word(card: firmware_bridge::board::CardState) -> String {
    format!("{card:?}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(n: u8) -> Event {
        Event::Input {
            input: n,
            closed: true,
            alarm: true,
        }
    }

    #[test]
    fn a_reader_gets_what_it_missed_or_is_told_it_lost_some() {
        let events = Events::new();
        assert!(matches!(events.since(0), Since::Events(e) if e.is_empty()));
        for n in 1..=3 {
            events.publish(input(n));
        }
        let Since::Events(after_1) = events.since(1) else {
            panic!("no gap yet")
        };
        assert_eq!(after_1.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(events.seq_of(&events.latest_id()), Some(3));
        // From the future, or another run: a gap.
        assert!(matches!(events.since(4), Since::Gap));
        assert_eq!(events.seq_of("17-2"), None);
        assert_eq!(events.seq_of("garbage"), None);

        for n in 0..CAPACITY {
            events.publish(input(n as u8));
        }
        // 3 + CAPACITY published: the ring holds 4 on.
        assert!(matches!(events.since(2), Since::Gap), "fell behind");
        let Since::Events(all) = events.since(3) else {
            panic!("the oldest is still there")
        };
        assert_eq!(all.len(), CAPACITY);
    }

    #[test]
    fn without_a_token_numbers_and_texts_are_left_out() {
        let sms = Event::SmsIn {
            from: Some("+46701234567".into()),
            text: Some("1234 STATUS".into()),
        };
        assert_eq!(
            serde_json::to_value(sms.redacted()).unwrap(),
            serde_json::json!({"type": "sms-in", "from": null, "text": null})
        );
        let out = Event::SmsOut {
            by: "sms-commands".into(),
            to: Some("+46701234567".into()),
            text: Some("OK".into()),
        };
        assert_eq!(
            serde_json::to_value(out.redacted()).unwrap()["by"],
            "sms-commands"
        );
        assert_eq!(input(1).redacted(), input(1));
        assert_eq!(sms.kind(), "sms-in");
    }
}
