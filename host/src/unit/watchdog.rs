//! systemd's service watchdog (`Type=notify`, `WatchdogSec=`): larmd says
//! `WATCHDOG=1` every half `WATCHDOG_USEC`, but only after the event loop
//! has answered, and found the modem task and every plugin worker alive.
//! A larmd that hangs anywhere there stops saying it, and systemd restarts
//! it. With no watchdog asked for (not under systemd), nothing runs.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

/// The event loop's answer to a ping: whether all is well, and if not, why.
pub type Ping = oneshot::Sender<Result<(), String>>;

/// The interval systemd asked for (`WATCHDOG_USEC`), if it asked.
pub fn interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Tells systemd the unit runs (`READY=1`); nothing when not under systemd.
pub fn ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the unit is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Tells systemd's watchdog the process lives, with no check: before a
/// restart of larmd (`RESTART ALL` re-executes the same process) and while
/// the new one builds its unit.
pub fn alive() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
}

/// Pings the event loop every half `every`, and systemd's watchdog when it
/// answers well within that time.
pub async fn run(pings: mpsc::Sender<Ping>, every: Duration) {
    let half = every / 2;
    info!("systemd watchdog: every {half:?}");
    // Ticks a fixed time apart, whatever an answer took, so two
    // notifications are never a whole interval apart.
    let mut ticks = tokio::time::interval(half);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (ping, answer) = oneshot::channel();
        if pings.send(ping).await.is_err() {
            return;
        }
        match tokio::time::timeout(half / 2, answer).await {
            Ok(Ok(Ok(()))) => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Ok(Ok(Err(why))) => error!("not telling the watchdog all is well: {why}"),
            Ok(Err(_)) => return,
            Err(_) => error!(
                "the event loop did not answer the watchdog within {:?}",
                half / 2
            ),
        }
    }
}
