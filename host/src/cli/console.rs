//! The console of `larmd run` on the simulated board: commands on stdin,
//! and what the unit does printed in words.

use std::time::Duration;

use firmware_bridge::board::{Contact, InputId, OutputId};
use firmware_bridge::leds;
use firmware_bridge::modem::sim::{SimEvent, SimModem};
use tokio::io::AsyncBufReadExt;

use larm_host::unit::Shared;

/// Reads commands from stdin to drive the simulated board. When stdin ends
/// (a service, a test), larmd keeps running.
pub async fn sim_console(
    sim: std::sync::Arc<firmware_bridge::board::SimBoard>,
    modem: Option<SimModem>,
    shared: std::sync::Arc<Shared>,
    leds: tokio::sync::watch::Receiver<leds::UnitState>,
) {
    const HELP: &str = "commands: close N, open N (input N), card out, card in (extended I/O card), \
                        sms FROM TEXT, ring FROM, modem COMMAND (with the simulated modem; `modem help`), \
                        status";
    eprintln!("simulated board: {HELP}");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match (words.as_slice(), &modem) {
            (["sms", from, ..], Some(modem)) => {
                let text = line.trim_start()[3..].trim_start()[from.len()..].trim_start();
                modem.deliver_sms(from, text);
                continue;
            }
            (["ring", from], Some(modem)) => {
                modem.ring(from);
                continue;
            }
            (["modem", ..], Some(modem)) => {
                let rest = line.trim_start()["modem".len()..].trim();
                if let Err(e) = super::modem::command(modem, rest) {
                    eprintln!("{e}\nmodem {}", super::modem::HELP);
                }
                continue;
            }
            (["sms" | "ring" | "modem", ..], None) => {
                eprintln!("no simulated modem ([modem] simulator = \"ec2x\" in the config)");
                continue;
            }
            _ => {}
        }
        let (contact, n) = match words.as_slice() {
            ["close", n] => (Contact::Closed, n),
            ["open", n] => (Contact::Open, n),
            ["card", state @ ("in" | "out")] => {
                if !sim.set_card_present(*state == "in") {
                    eprintln!("this board has no extended card ([board.extended] in the config)");
                }
                continue;
            }
            ["status"] => {
                eprintln!("{}", status(&shared, &leds.borrow()));
                continue;
            }
            [] => continue,
            _ => {
                eprintln!("{HELP}");
                continue;
            }
        };
        match n.parse() {
            Ok(n) => {
                if let Err(e) = sim.set_input(InputId(n), contact) {
                    eprintln!("{e}");
                }
            }
            Err(_) => eprintln!("`{n}` is not an input number"),
        }
    }
}

/// The unit's status in words, as the console's `status` prints it.
fn status(shared: &Shared, leds: &leds::UnitState) -> String {
    let d = shared.device_status();
    let bits = |n: u8, read: &dyn Fn(u8) -> bool| {
        (1..=n)
            .map(|i| if read(i) { '1' } else { '0' })
            .collect::<String>()
    };
    let board = &shared.board;
    let inputs = bits(d.input_count, &|i| {
        matches!(board.read_input(InputId(i)), Ok(Contact::Closed))
    });
    let outputs = bits(d.output_count, &|o| {
        matches!(board.read_output(OutputId(o)), Ok(true))
    });
    let engine = leds::LedEngine::new(leds.clone(), std::time::Instant::now());
    let leds: Vec<String> = leds::LEDS.iter().map(|&l| engine.describe(l)).collect();
    let modem = match shared.modem.borrow().as_ref() {
        None => "none".to_string(),
        Some(m) if !m.answering => "not answering".to_string(),
        Some(m) => format!(
            "SIM {}, network {}, signal {}/5{}",
            m.sim.name(),
            m.network.name(),
            m.signal_bars,
            m.operator
                .as_deref()
                .map(|o| format!(", {o}"))
                .unwrap_or_default()
        ),
    };
    let server = match (d.server_connected, shared.link.borrow().failing) {
        (true, _) => "connected",
        (false, true) => "cannot connect",
        (false, false) => "not connected",
    };
    let outbox = match d.outbox_oldest_s {
        Some(age) => format!("{} waiting, the oldest for {age} s", d.outbox_depth),
        None => "empty".to_string(),
    };
    let lockout = match d.password_lockout_s {
        Some(left) => format!("\npasswords: unit-wide lockout, {left} s left"),
        None => String::new(),
    };
    let plugins: Vec<String> = shared
        .plugin_health()
        .iter()
        .map(|h| {
            let field = match (&h.version, h.on_probation) {
                (Some(v), true) => format!(" (field update {v}, on probation)"),
                (Some(v), false) => format!(" (field update {v})"),
                (None, _) => String::new(),
            };
            format!("{} {}{field}", h.name, h.state.name())
        })
        .collect();
    format!(
        "unit {}: inputs 1-{} {inputs} (1 = closed), outputs 1-{} {outputs} (1 = on; output {} is ALARM)\n\
         LEDs: {}\nmodem: {modem}\nserver: {server}; outbox: {outbox}{lockout}\nplugins: {}",
        d.unit_id,
        d.input_count,
        d.output_count,
        board.alarm_output().0,
        leds.join(", "),
        plugins.join(", ")
    )
}

/// Prints what the unit sends through the simulated modem.
pub async fn print_modem(mut events: tokio::sync::broadcast::Receiver<SimEvent>) {
    while let Ok(event) = events.recv().await {
        match event {
            SimEvent::SmsSent { to, text } => {
                tracing::info!(event = "modem-sms", to = %to, "modem: SMS sent to {to}: {text:?}")
            }
            SimEvent::Dialled(number) => {
                tracing::info!(event = "modem-dial", to = %number, "modem: dialling {number}")
            }
            SimEvent::HungUp => tracing::info!("modem: hung up"),
            SimEvent::Restarted => tracing::info!("modem: restarted"),
        }
    }
}

/// Logs what the status LEDs show, in words, whenever it changes.
pub async fn print_leds(mut states: tokio::sync::watch::Receiver<leds::UnitState>) {
    let now = std::time::Instant::now;
    let mut engine = leds::LedEngine::new(states.borrow_and_update().clone(), now());
    let mut shown: Vec<String> = Vec::new();
    loop {
        let described: Vec<String> = leds::LEDS.iter().map(|&l| engine.describe(l)).collect();
        for (i, line) in described.iter().enumerate() {
            if shown.get(i) != Some(line) {
                let led = leds::LEDS[i];
                let pattern = engine.pattern(led);
                let (mode, blinks) = (
                    pattern.name(),
                    pattern.groups().first().copied().unwrap_or(0),
                );
                tracing::info!(event = "led", led = %led, mode, blinks, "LED {line}");
            }
        }
        shown = described;
        // Patterns also change with time (green's 5 s after an SMS); the
        // blinks themselves change no words.
        let wake = engine
            .next_pattern_change(now())
            .unwrap_or_else(|| now() + Duration::from_secs(3600));
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    return;
                }
                engine.update(states.borrow_and_update().clone(), now());
            }
            () = tokio::time::sleep_until(wake.into()) => {
                engine.levels(now());
            }
        }
    }
}
