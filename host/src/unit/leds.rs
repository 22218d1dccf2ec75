//! What the status LEDs show, derived from the unit's state channels and
//! re-derived whenever one of them changes (or when the yellow LED's
//! linger after a send runs out), so an idle unit does not wake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_bridge::board::CardState;
use firmware_bridge::leds::{ErrorCode, Network, UnitState};
use tokio::sync::watch;

use super::shared::{LinkState, Shared};
use crate::modem::ModemStatus;
use crate::plugins::bindings::larm::plugin::types::{NetworkType, PluginState, SimState};

/// The yellow LED stays lit at least this long, so a send that takes a
/// moment is still seen.
const YELLOW_AT_LEAST: Duration = Duration::from_secs(1);

/// Keeps `led_state` current until the unit stops.
pub async fn follow(shared: Arc<Shared>, led_state: watch::Sender<UnitState>) {
    let mut card = shared.board.card();
    let mut modem = shared.modem.subscribe();
    let mut link = shared.link.subscribe();
    let mut health = shared.health.subscribe();
    let mut sms = shared.last_sms.subscribe();
    loop {
        let now = Instant::now();
        let modem_now = modem.borrow_and_update().clone();
        let quarantined = health
            .borrow_and_update()
            .values()
            .any(|h| h.state == PluginState::Quarantined);
        let state = unit_state(&Inputs {
            card: *card.borrow_and_update(),
            modem: modem_now.as_ref(),
            link: *link.borrow_and_update(),
            quarantined,
            last_sms: *sms.borrow_and_update(),
            config_corrupt: shared.config_corrupt,
            now,
        });
        led_state.send_if_modified(|shown| {
            let changed = *shown != state;
            if changed {
                *shown = state;
            }
            changed
        });
        // The one change that comes with time alone: the yellow linger ends.
        let linger_ends = modem_now
            .and_then(|m| m.busy_ended)
            .map(|t| t + YELLOW_AT_LEAST)
            .filter(|t| *t > now);
        tokio::select! {
            r = card.changed() => if r.is_err() { return },
            r = modem.changed() => if r.is_err() { return },
            r = link.changed() => if r.is_err() { return },
            r = health.changed() => if r.is_err() { return },
            r = sms.changed() => if r.is_err() { return },
            () = super::sleep_until(linger_ends) => {}
        }
    }
}

/// What the LED state is made of.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The extended card.
    pub card: CardState,
    /// The modem's status; None without a modem.
    pub modem: Option<&'a ModemStatus>,
    /// The server link.
    pub link: LinkState,
    /// A plugin is quarantined.
    pub quarantined: bool,
    /// When the last SMS arrived.
    pub last_sms: Option<Instant>,
    /// The config is corrupt.
    pub config_corrupt: bool,
    /// Now.
    pub now: Instant,
}

/// What the LEDs should show.
pub fn unit_state(i: &Inputs) -> UnitState {
    let mut state = UnitState {
        server_connected: i.link.connected,
        sms_received: i.last_sms,
        config_corrupt: i.config_corrupt,
        ..UnitState::default()
    };
    if i.card == CardState::Missing {
        state.errors.insert(ErrorCode::ExtendedIo);
    }
    if i.link.failing {
        state.errors.insert(ErrorCode::Server);
    }
    // A plugin that keeps failing is an internal error: restarting helps
    // only if the fault was passing, which is what docs/unit.md says to try.
    if i.quarantined {
        state.errors.insert(ErrorCode::Internal);
    }
    if let Some(modem) = i.modem {
        state.busy = modem.busy
            || modem
                .busy_ended
                .is_some_and(|t| i.now.saturating_duration_since(t) < YELLOW_AT_LEAST);
        state.signal_bars = modem.signal_bars;
        state.network = match modem.network {
            NetworkType::Lte => Network::Lte,
            NetworkType::Gsm | NetworkType::Umts => Network::Gsm,
            NetworkType::None => Network::None,
        };
        let code = if !modem.answering {
            Some(ErrorCode::Modem)
        } else if modem.sim != SimState::Ready {
            Some(ErrorCode::Sim)
        } else if modem.network == NetworkType::None {
            Some(ErrorCode::NoNetwork)
        } else if modem.signal_bars <= 1 {
            Some(ErrorCode::LowSignal)
        } else {
            None
        };
        state.errors.extend(code);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(modem: Option<&ModemStatus>) -> Inputs<'_> {
        Inputs {
            card: CardState::NotFitted,
            modem,
            link: LinkState::default(),
            quarantined: false,
            last_sms: None,
            config_corrupt: false,
            now: Instant::now(),
        }
    }

    fn healthy_modem() -> ModemStatus {
        ModemStatus {
            answering: true,
            sim: SimState::Ready,
            network: NetworkType::Lte,
            signal_bars: 4,
            ..ModemStatus::default()
        }
    }

    fn errors(i: &Inputs) -> Vec<ErrorCode> {
        unit_state(i).errors.into_iter().collect()
    }

    #[test]
    fn no_modem_configured_shows_no_modem_codes() {
        assert!(errors(&inputs(None)).is_empty());
    }

    #[test]
    fn modem_states_map_to_the_units_codes() {
        let m = healthy_modem();
        assert!(errors(&inputs(Some(&m))).is_empty());
        let state = unit_state(&inputs(Some(&m)));
        assert_eq!((state.signal_bars, state.network), (4, Network::Lte));
        let cases = [
            (ModemStatus::default(), ErrorCode::Modem),
            (
                ModemStatus {
                    sim: SimState::PinRequired,
                    ..healthy_modem()
                },
                ErrorCode::Sim,
            ),
            (
                ModemStatus {
                    network: NetworkType::None,
                    ..healthy_modem()
                },
                ErrorCode::NoNetwork,
            ),
            (
                ModemStatus {
                    signal_bars: 1,
                    ..healthy_modem()
                },
                ErrorCode::LowSignal,
            ),
        ];
        for (m, code) in cases {
            assert_eq!(errors(&inputs(Some(&m))), [code], "{m:?}");
        }
        let m = ModemStatus {
            busy_ended: Some(Instant::now()),
            ..healthy_modem()
        };
        assert!(
            unit_state(&inputs(Some(&m))).busy,
            "yellow lingers after a send"
        );
        let later = Inputs {
            now: Instant::now() + YELLOW_AT_LEAST,
            ..inputs(Some(&m))
        };
        assert!(!unit_state(&later).busy, "and then goes out");
    }

    #[test]
    fn card_link_quarantine_and_corrupt_config() {
        let card = Inputs {
            card: CardState::Missing,
            ..inputs(None)
        };
        assert_eq!(errors(&card), [ErrorCode::ExtendedIo]);
        let quarantined = Inputs {
            quarantined: true,
            ..inputs(None)
        };
        assert_eq!(errors(&quarantined), [ErrorCode::Internal], "code 10");
        let link = Inputs {
            link: LinkState {
                connected: false,
                failing: true,
            },
            ..inputs(None)
        };
        assert_eq!(errors(&link), [ErrorCode::Server], "code 6");
        let corrupt = Inputs {
            config_corrupt: true,
            ..inputs(None)
        };
        assert!(unit_state(&corrupt).config_corrupt);
    }
}
