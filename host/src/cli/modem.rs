//! `larmd modem probe` and `larmd sim modem`.

use std::path::Path;

use anyhow::{Context, bail};
use firmware_bridge::modem::sim::{Profile, SimCard, SimEvent, SimModem, SimNetwork};
use firmware_bridge::modem::{Modem, Network, SimState};
use tokio::io::AsyncBufReadExt;

/// Opens the modem on `port`, initialises it and prints what it reports.
pub async fn probe(port: &Path, baud: u32) -> anyhow::Result<()> {
    if !port.exists() {
        bail!(
            "{} does not exist: is the modem plugged in, and is this its port?",
            port.display()
        );
    }
    let mut modem = Modem::open(port, baud)?;
    let sim = modem.init().await.map_err(|e| {
        anyhow::anyhow!(
            "the modem on {} does not answer ({e}); check the port and the baud rate ({baud})",
            port.display()
        )
    })?;
    let status = modem.status().await.context("reading the modem's status")?;
    println!("port:     {}", port.display());
    println!(
        "SIM:      {}",
        match &sim {
            SimState::Ready => "ready".to_string(),
            SimState::PinRequired => "PIN required (remove the PIN from the SIM card)".into(),
            SimState::Locked(code) => format!("locked ({code})"),
            SimState::NotInserted => "not inserted".into(),
            SimState::Error(e) => format!("error ({e})"),
        }
    );
    println!("signal:   {} bars (CSQ {})", status.bars, status.csq);
    println!(
        "network:  {}{}",
        match status.network {
            Network::None => "not registered",
            Network::Gsm => "GSM",
            Network::Umts => "UMTS",
            Network::Lte => "LTE",
        },
        if status.roaming { " (roaming)" } else { "" }
    );
    println!("operator: {}", status.operator.as_deref().unwrap_or("-"));
    println!("IMEI:     {}", status.imei.as_deref().unwrap_or("-"));
    println!("ICCID:    {}", status.iccid.as_deref().unwrap_or("-"));
    Ok(())
}

/// The simulator's commands.
pub const HELP: &str = "commands:
  sms FROM TEXT        deliver an SMS from FROM
  ring FROM            an incoming call from FROM
  signal N             signal strength as +CSQ reports it (0-31, 99 = unknown)
  network none|gsm|lte
  sim ready|pin|absent
  silent on|off        stop answering (a hung modem) / answer again
  garbage              send line noise before the next answer
  urcs on|off          put a URC in the middle of every answer
  storage N            how many SMS the storage holds (0 = full)
  restart-delay SECS   how long AT+CFUN=1,1 keeps the modem silent";

/// Runs the modem simulator, printing its pty path and what the other side
/// does, and taking commands on stdin.
pub async fn simulate(profile: &str) -> anyhow::Result<()> {
    let profile = Profile::by_name(profile)
        .with_context(|| format!("no modem profile `{profile}` (try ec2x or sim800)"))?;
    let sim = SimModem::start(profile).context("opening a pseudo-terminal")?;
    println!("simulated {profile:?} modem on {}", sim.path().display());
    eprintln!("{HELP}");
    let mut events = sim.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                SimEvent::SmsSent { to, text } => println!("SMS to {to}: {text}"),
                SimEvent::Dialled(number) => println!("dialled {number}"),
                SimEvent::HungUp => println!("hung up"),
                SimEvent::Restarted => println!("restarted"),
            }
        }
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Err(e) = command(&sim, line.trim()) {
            eprintln!("{e}\n{HELP}");
        }
    }
    // Stdin closed (a test, a service): keep playing the modem.
    std::future::pending().await
}

/// Carries out one simulator command (see [`HELP`]).
pub fn command(sim: &SimModem, line: &str) -> Result<(), String> {
    let mut words = line.splitn(3, ' ');
    let (verb, arg) = (words.next().unwrap_or_default(), words.next());
    let on_off = |a: Option<&str>| match a {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        _ => Err(format!("{verb} on|off")),
    };
    match (verb, arg) {
        ("", _) => {}
        ("sms", Some(from)) => sim.deliver_sms(from, words.next().unwrap_or_default()),
        ("ring", Some(from)) => sim.ring(from),
        ("signal", Some(n)) => sim.set_signal(n.parse().map_err(|_| "signal N (0-31, 99)")?),
        ("network", Some(n)) => {
            sim.set_network(SimNetwork::by_name(n).ok_or("network none|gsm|lte")?)
        }
        ("sim", Some(s)) => sim.set_sim(SimCard::by_name(s).ok_or("sim ready|pin|absent")?),
        ("silent", a) => sim.set_silent(on_off(a)?),
        ("urcs", a) => sim.set_urc_mid_response(on_off(a)?),
        ("garbage", None) => sim.send_garbage(),
        ("storage", Some(n)) => sim.set_storage_capacity(n.parse().map_err(|_| "storage N")?),
        ("restart-delay", Some(s)) => sim.set_restart_delay(std::time::Duration::from_secs_f64(
            s.parse().map_err(|_| "restart-delay SECS")?,
        )),
        _ => return Err(format!("cannot do `{line}`")),
    }
    Ok(())
}
