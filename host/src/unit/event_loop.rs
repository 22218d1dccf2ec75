//! The unit's event loop: input edges and SMS to the plugins, the actions
//! they take to the outbox, the modem and the server link.

use std::time::Duration;

use firmware_bridge::board::Contact as BoardContact;
use tokio::sync::{broadcast, mpsc};
use tracing::{error, info, warn};

use super::events::Event;
use super::{Action, Ending, Unit};
use super::{leds, watchdog};
use crate::config::Step;
use crate::modem::{Incoming, Outgoing};
use crate::outbox::{Item, New, Outbox};
use crate::plugins::bindings::larm::plugin::system::RestartTarget;
use crate::plugins::bindings::larm::plugin::types::{
    CallEvent, Contact, InputEvent, OutputChange, Report, SmsMessage,
};
use crate::server::Control;

/// The longest the unit waits for queued SMS and calls to go before a
/// restart it was asked for.
const DRAIN_AT_MOST: Duration = Duration::from_secs(120);

impl Unit {
    /// Runs until `shutdown` resolves, or a plugin asks for the unit to
    /// restart (`RESTART ALL`), which the caller carries out.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Ending {
        tokio::pin!(shutdown);
        let drive = tokio::spawn(firmware_bridge::leds::drive(
            self.shared.board.clone(),
            self.led_state.subscribe(),
        ));
        let follow = tokio::spawn(leds::follow(self.shared.clone(), self.led_state.clone()));
        let publish = tokio::spawn(super::events::follow(
            self.shared.clone(),
            self.led_state.subscribe(),
        ));
        // Kept while the loop runs: with no watchdog, no ping ever comes.
        let (ping_tx, mut pings) = mpsc::channel(1);
        let watchdog =
            watchdog::interval().map(|every| tokio::spawn(watchdog::run(ping_tx.clone(), every)));
        let mut ending = Ending::Stopped;
        'events: loop {
            tokio::select! {
                edge = self.edges.recv() => match edge {
                    Ok(edge) => {
                        if let Some(kept) = &self.sim_inputs {
                            kept.changed();
                        }
                        let contact = match edge.contact {
                            BoardContact::Closed => Contact::Closed,
                            BoardContact::Open => Contact::Open,
                        };
                        info!(event = "input", input = edge.input.0, closed = contact == Contact::Closed, "input {} {}", edge.input.0, match contact {
                            Contact::Closed => "closed",
                            Contact::Open => "open",
                        });
                        self.plugins.input(InputEvent {
                            input: edge.input.0,
                            contact,
                            at_ms: self.shared.monotonic_ms(edge.at),
                        });
                        // After the plugins have it: reading its wiring
                        // does not delay them.
                        let closed = contact == Contact::Closed;
                        self.shared.events.publish(Event::Input {
                            input: edge.input.0,
                            closed,
                            alarm: self.shared.input_mode(edge.input.0).alarm(closed),
                        });
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        if let Some(kept) = &self.sim_inputs {
                            kept.changed();
                        }
                        warn!("{n} input edges were lost: the event loop fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(mut event) = self.actions.recv() => {
                    // Restarts go last, so the replies queued with them are
                    // sent first (as `system.restart` promises).
                    event.sort_by_key(|a| matches!(a, Action::Restart { .. }));
                    let restart = event
                        .iter()
                        .find_map(|a| match a {
                            Action::Restart { by, target: RestartTarget::Unit } => Some(by.clone()),
                            _ => None,
                        });
                    self.carry_out(event);
                    if let Some(by) = restart {
                        warn!("restart of the unit requested (by {by})");
                        if self.outgoing.is_some() {
                            // The watchdog is still answered while replies go.
                            let drained = modem_drained(&self.outbox);
                            tokio::pin!(drained);
                            loop {
                                tokio::select! {
                                    () = &mut drained => break,
                                    Some(ping) = pings.recv() => {
                                        let _ = ping.send(self.trouble().map_or(Ok(()), Err));
                                    }
                                }
                            }
                        }
                        ending = Ending::Restart;
                        break 'events;
                    }
                }
                Some(incoming) = self.incoming.recv() => match incoming {
                    Incoming::Sms(sms) => {
                        let sender = sms.sender.to_string();
                        // Outside text: escaped, so it cannot forge log lines.
                        let shown = sender.escape_debug().to_string();
                        info!(event = "sms-in", sender = %shown, "SMS received: {:?}", sms.text);
                        self.shared.events.publish(Event::SmsIn {
                            from: Some(sender.clone()),
                            text: Some(sms.text.clone()),
                        });
                        if !self.allowed(&sender) {
                            warn!(sender = %shown, "SMS dropped: the sender is not in [sms] allow_from");
                            continue;
                        }
                        let message = SmsMessage {
                            sender: sender.clone(),
                            text: sms.text,
                            sent_at: sms.timestamp.unix,
                        };
                        if self.plugins.sms(message).await.is_none() {
                            info!(sender = %shown, "no command set took the SMS");
                        }
                    }
                    Incoming::Call(caller) => {
                        info!(caller = %caller.as_deref().unwrap_or("unknown").escape_debug(), "incoming call");
                        self.shared.events.publish(Event::IncomingCall { from: caller.clone() });
                        self.plugins.call(CallEvent { caller }).await;
                    }
                },
                Some(ping) = pings.recv() => {
                    let _ = ping.send(self.trouble().map_or(Ok(()), Err));
                }
                () = &mut shutdown => break,
            }
        }
        // A restart is not a stop for systemd: the same process (pid) says
        // READY again once it runs.
        if ending == Ending::Stopped {
            watchdog::stopping();
        }
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        drop(ping_tx);
        // A write queued by the last edge may not run once the runtime
        // stops: the inputs as they are now.
        if let Some(kept) = &self.sim_inputs {
            kept.write();
        }
        info!("stopping plugins");
        follow.abort();
        publish.abort();
        drive.abort();
        self.plugins.shutdown();
        // What the plugins did while the unit was stopping (their queues are
        // handled to the end) still goes into the outbox: nothing is lost.
        while let Ok(event) = self.actions.try_recv() {
            self.carry_out(event);
        }
        ending
    }

    /// What keeps the unit from working, if anything: for the watchdog.
    fn trouble(&self) -> Option<String> {
        if self.modem_task.as_ref().is_some_and(|t| t.is_finished()) {
            return Some("the modem task stopped".into());
        }
        self.plugins.trouble()
    }

    /// Whether `sender` may send commands (`[sms] allow_from`).
    fn allowed(&self, sender: &str) -> bool {
        self.allow_from.is_empty() || self.allow_from.iter().any(|a| a.matches(sender))
    }

    /// Carries out the actions of one event: SMS, calls and server reports
    /// go to the outbox (an alarm's together, so they can escalate), the
    /// rest to the modem, the server link or the log.
    fn carry_out(&self, event: Vec<Action>) {
        if let Some(recorder) = self.plugins.recorder() {
            for action in &event {
                recorder.action(action);
            }
        }
        let alarm = event.iter().any(|a| {
            matches!(
                a,
                Action::Report {
                    report: Report::Alarm(_),
                    ..
                }
            )
        });
        let step = |s: Step| alarm.then_some(s);
        // A restore goes with alarms, in order, before routine replies.
        let urgent = event.iter().any(|a| {
            matches!(
                a,
                Action::Report {
                    report: Report::Alarm(_) | Report::Restore(_),
                    ..
                }
            )
        });
        let mut queue = Vec::new();
        let mut restart_modem = false;
        for action in event {
            match action {
                Action::Output { by, output, on } => {
                    info!(
                        event = "output", output, on, by = %by,
                        "output {output} {} (by {by})",
                        if on { "on" } else { "off" }
                    );
                    let hold = self.shared.outputs.holds().borrow().get(&output).cloned();
                    self.shared.events.publish(Event::Output {
                        output,
                        on,
                        by: by.clone(),
                        held_by: hold.as_ref().map(|h| h.by.clone()),
                        off_at_ms: hold.and_then(|h| h.off_at_ms),
                    });
                    queue.extend(self.for_server(Report::OutputChanged(OutputChange {
                        output,
                        on,
                        by,
                    })));
                }
                Action::Sms { by, to, text } => {
                    info!(event = "sms-out", to = %to, by = %by, "SMS to {to} (by {by}): {}", text.escape_debug());
                    self.shared.events.publish(Event::SmsOut {
                        by: by.clone(),
                        to: Some(to.clone()),
                        text: Some(text.clone()),
                    });
                    queue.extend(self.for_modem(Item::Sms { to, text }, step(Step::Sms)));
                }
                Action::Call { by, number, ring_s } => {
                    info!(event = "call", to = %number, ring_s, by = %by, "alarm call to {number} for {ring_s} s (by {by})");
                    self.shared.events.publish(Event::Call {
                        by: by.clone(),
                        to: Some(number.clone()),
                    });
                    queue.extend(self.for_modem(Item::Call { number, ring_s }, step(Step::Call)));
                }
                Action::Report { by, report } => {
                    info!(event = "report", kind = report_kind(&report), by = %by, "report (by {by}): {report}");
                    match &report {
                        Report::Alarm(a) => self.shared.events.publish(Event::Alarm {
                            input: a.input,
                            name: a.name.clone(),
                            text: a.text.clone(),
                        }),
                        Report::Restore(a) => self.shared.events.publish(Event::Restore {
                            input: a.input,
                            name: a.name.clone(),
                            text: a.text.clone(),
                        }),
                        _ => {}
                    }
                    queue.extend(self.for_server(report).map(|mut n| {
                        n.step = step(Step::Server);
                        n
                    }));
                }
                Action::RejectCall { by } => match &self.outgoing {
                    Some(modem) => {
                        info!(event = "call-rejected", by = %by, "rejecting the incoming call (by {by})");
                        let _ = modem.send(Outgoing::RejectCall);
                    }
                    None => warn!("no modem to reject a call with"),
                },
                Action::Connect { by } => {
                    info!("server connection requested (by {by})");
                    self.to_link(Control::Connect);
                }
                Action::SetInterval { by, minutes } => {
                    info!("connection interval set to {minutes} min (by {by})");
                    self.to_link(Control::Interval(minutes));
                }
                Action::Restart {
                    by,
                    target: RestartTarget::Modem,
                } => {
                    info!("modem restart requested (by {by})");
                    restart_modem = true;
                }
                // The event loop ends the run after this event.
                Action::Restart {
                    target: RestartTarget::Unit,
                    ..
                } => {}
                Action::FactoryReset { by } => warn!("factory settings restored (by {by})"),
            }
        }
        for n in &mut queue {
            n.alarm = urgent;
        }
        let modem_items: Vec<bool> = queue.iter().map(|n| n.item.for_modem()).collect();
        match self.outbox.push(queue) {
            // Logged once durable: from here on the alarm reaches someone,
            // whatever happens to larmd.
            Ok(ids) if alarm => {
                let sms_and_calls: Vec<u64> = ids
                    .iter()
                    .zip(modem_items)
                    .filter_map(|(id, modem)| modem.then_some(*id))
                    .collect();
                info!(event = "alarm-queued", entries = ?ids, modem = ?sms_and_calls, "alarm queued in the outbox");
            }
            Ok(_) => {}
            Err(e) => error!("{e}: the event's SMS, calls and reports are lost"),
        }
        if restart_modem {
            match &self.outgoing {
                // After the replies queued with it (as `system.restart` promises).
                Some(modem) => {
                    let (outbox, modem) = (self.outbox.clone(), modem.clone());
                    tokio::spawn(async move {
                        modem_drained(&outbox).await;
                        let _ = modem.send(Outgoing::Restart);
                    });
                }
                None => warn!("no modem to restart"),
            }
        }
    }

    /// An outbox entry for the modem, if the unit has one.
    fn for_modem(&self, item: Item, step: Option<Step>) -> Option<New> {
        if self.outgoing.is_none() {
            warn!("no modem: {item:?} not sent");
            return None;
        }
        Some(New {
            item,
            step,
            alarm: false,
        })
    }

    /// An outbox entry for the server, if the unit has a server link.
    fn for_server(&self, report: Report) -> Option<New> {
        self.link.as_ref()?;
        Some(New {
            item: Item::Report(report.into()),
            step: None,
            alarm: false,
        })
    }

    fn to_link(&self, control: Control) {
        match &self.link {
            Some(link) => {
                let _ = link.send(control);
            }
            None => info!("no server link: {control:?} has no effect"),
        }
    }
}

/// The kind of a report, as a word for the log's `kind` field.
fn report_kind(report: &Report) -> &'static str {
    match report {
        Report::Status(_) => "status",
        Report::Alarm(_) => "alarm",
        Report::Restore(_) => "restore",
        Report::OutputChanged(_) => "output",
        Report::PluginHealth(_) => "health",
        Report::Update(_) => "update",
    }
}

/// Waits ([`DRAIN_AT_MOST`]) until the outbox has no SMS or call due, so
/// the reply to `RESTART` goes before the restart. What is not sent by
/// then stays in the outbox for after it. Each send or failure is a change
/// of the outbox, so this wakes only then.
async fn modem_drained(outbox: &Outbox) {
    let _ = tokio::time::timeout(DRAIN_AT_MOST, async {
        loop {
            let changed = outbox.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !outbox.modem_pending() {
                return;
            }
            changed.await;
        }
    })
    .await;
}
