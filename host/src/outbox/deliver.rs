//! Hands the outbox's SMS and calls to the modem, one at a time, alarms
//! first: each is chosen when the modem is free, so an alarm queued behind
//! routine replies still goes next. While an alarm call rings, SMS go on
//! and the next call waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::{Item, MAX_BACKOFF, Outbox};
use crate::modem::{ModemStatus, Outgoing};

/// Sends the outbox's SMS and calls through the modem task until it is
/// gone: an entry is removed when the modem confirms it (`+CMGS`, a call
/// that rang), else tried again after a backoff.
pub async fn deliver_to_modem(
    outbox: Arc<Outbox>,
    modem: mpsc::UnboundedSender<Outgoing>,
    mut status: watch::Receiver<Option<ModemStatus>>,
) {
    loop {
        let changed = outbox.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        loop {
            let ringing = status
                .borrow_and_update()
                .as_ref()
                .is_some_and(|s| s.ringing);
            let Some(entry) = outbox.take_next_for_modem(!ringing) else {
                break;
            };
            let (done, result) = oneshot::channel();
            let (what, request) = match entry.item {
                Item::Sms { to, text } => {
                    (format!("SMS to {to}"), Outgoing::Sms { to, text, done })
                }
                Item::Call { number, ring_s } => (
                    format!("call to {number}"),
                    Outgoing::Call {
                        number,
                        ring: Duration::from_secs(ring_s.into()),
                        done,
                    },
                ),
                Item::Report(_) => unreachable!("take_due(true) returns modem entries only"),
            };
            if modem.send(request).is_err() {
                return;
            }
            match result.await {
                Ok(Ok(())) => {
                    info!("outbox: {what} done (entry {})", entry.id);
                    if let Err(e) = outbox.done(entry.id) {
                        error!("{e}: entry {} may be sent again", entry.id);
                    }
                }
                Ok(Err(why)) => {
                    if let Some(wait) = outbox.failed(entry.id, MAX_BACKOFF) {
                        warn!("outbox: {what} failed ({why}); next try in {wait:?}");
                    }
                }
                Err(_) => return,
            }
        }
        let wake = outbox.next_wake();
        tokio::select! {
            () = &mut changed => {}
            () = crate::unit::sleep_until(wake) => {}
            // A call that ended lets the next one go.
            Ok(()) = status.changed() => {}
        }
    }
}
