//! `GET /api/v1/events`: the unit's live events as Server-Sent Events
//! (`event:` the kind, `id:` its id, `data:` the JSON of
//! [`crate::unit::events::Event`] with `at_ms` added).
//!
//! A client that sends `Last-Event-ID` (browsers do on reconnect; the
//! panel sends the `event_id` of the status it read) gets every event after
//! it first. One the ring no longer holds, or of an earlier run of larmd,
//! gets a `reset` event instead: it should read the status again.
//!
//! Streams are long-lived, so at most [`MAX_STREAMS`] are open at once,
//! leaving connection slots to everything else; a comment every
//! [`KEEP_ALIVE`] finds the dead ones (a client that stops reading is cut
//! off by the connection's write timeout).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Api, error};
use crate::unit::Shared;
use crate::unit::events::{Since, Stamped};

/// The most event streams open at once.
pub const MAX_STREAMS: usize = 16;
/// How often an idle stream sends a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The slots for streams, shared by the API's handlers.
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    /// [`MAX_STREAMS`] free slots.
    pub fn new() -> Self {
        Slots(Arc::new(Semaphore::new(MAX_STREAMS)))
    }
}

/// One client's place in the events.
struct Reader {
    shared: Arc<Shared>,
    /// The last event it was sent.
    seq: u64,
    /// Events read from the ring, not yet sent.
    queued: VecDeque<Stamped>,
    wake: tokio::sync::watch::Receiver<u64>,
    redact: bool,
    _slot: OwnedSemaphorePermit,
}

impl Reader {
    /// The next message for the client; none once the events' sender is
    /// gone.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(stamped) = self.queued.pop_front() {
                self.seq = stamped.seq;
                return Some(self.message(&stamped));
            }
            self.wake.borrow_and_update();
            match self.shared.events.since(self.seq) {
                Since::Events(events) if !events.is_empty() => self.queued = events.into(),
                Since::Events(_) => self.wake.changed().await.ok()?,
                Since::Gap => {
                    let latest = self.shared.events.latest_id();
                    self.seq = self.shared.events.seq_of(&latest).unwrap_or(0);
                    return Some(
                        SseEvent::default()
                            .event("reset")
                            .id(latest)
                            .data("{\"type\":\"reset\"}"),
                    );
                }
            }
        }
    }

    fn message(&self, stamped: &Stamped) -> SseEvent {
        let event = if self.redact {
            stamped.event.redacted()
        } else {
            stamped.event.clone()
        };
        let mut data = serde_json::to_value(&event).unwrap_or_default();
        data["at_ms"] = stamped.at_ms.into();
        // LEDs sent later (a client catching up) are further into their
        // patterns than when published.
        if let Some(leds) = data.get_mut("leds").and_then(|l| l.as_array_mut()) {
            let later = stamped.at.elapsed().as_millis() as u64;
            for led in leds {
                if let Some(phase) = led["phase_ms"].as_u64() {
                    led["phase_ms"] = (phase + later).into();
                }
            }
        }
        SseEvent::default()
            .event(event.kind())
            .id(self.shared.events.id(stamped.seq))
            .data(data.to_string())
    }
}

pub(super) async fn events(
    State(api): State<Api>,
    axum::Extension(slots): axum::Extension<Slots>,
    headers: HeaderMap,
) -> Response {
    let Ok(slot) = slots.0.try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open already"),
        );
    };
    let events = &api.shared.events;
    let seq = match headers.get("last-event-id").map(|v| v.to_str()) {
        // A new client: from now on (it reads the status first).
        None => events.seq_of(&events.latest_id()),
        Some(Ok(id)) => events.seq_of(id),
        Some(Err(_)) => None,
    };
    let reader = Reader {
        shared: api.shared.clone(),
        // An id not of this run: the first read is a gap, so a reset.
        seq: seq.unwrap_or(u64::MAX),
        queued: VecDeque::new(),
        wake: events.subscribe(),
        redact: api.token.is_none(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let message = reader.next().await?;
        Some((Ok::<_, Infallible>(message), reader))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}
