//! The local HTTP API (axum), JSON:
//!
//! - `GET /api/v1/status`: inputs, outputs (and who holds them), LEDs,
//!   modem, plugins and their health, device settings, quota counters.
//! - `PUT /api/v1/outputs/{n}` with `{"on": true}`, or `{"on": true,
//!   "for_s": 30}` for a timed output: switches an output, as the source
//!   `http` of `[outputs.N] owners` (409 while a higher one holds it).
//! - `GET /api/v1/plugins`: each plugin, what it runs (the config's
//!   component or one installed in the field), probation, the one before.
//! - `PUT /api/v1/plugins/{name}` with a signed component as the body:
//!   installs it (see [`crate::updates`]); `POST
//!   /api/v1/plugins/{name}/rollback` goes back to the one before.
//! - On the simulated board and modem: `PUT /api/v1/sim/inputs/{n}` with
//!   `{"closed": true}`, and `POST /api/v1/sim/sms` with `{"from": "+46…",
//!   "text": "1234 STATUS"}`.
//!
//! With `[http] token` set, every request needs `Authorization: Bearer <token>`.
//!
//! No client can hold the API: at most [`MAX_CONNECTIONS`] connections are
//! open at once (one more is closed at once), a request's head must arrive
//! within [`HEADER_TIMEOUT`] (also the most a kept-alive connection may sit
//! idle), a whole request, body included, within [`REQUEST_TIMEOUT`], and
//! a write of its answer within [`WRITE_TIMEOUT`] (hyper has no write
//! timeout: [`WriteDeadline`]).
//! `axum::serve` sets none of these, so the accept loop is ours, on hyper.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use firmware_bridge::board::{Contact, InputId, OutputId, SimBoard};
use firmware_bridge::leds::{self, LedEngine, UnitState};
use firmware_bridge::modem::sim::SimModem;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, watch};

use crate::config::HTTP_SOURCE;
use crate::outputs::{OutputError, Switch};
use crate::unit::Shared;
use crate::updates::{UpdateError, Updates};

/// What the API serves.
#[derive(Clone)]
pub struct Api {
    /// What the unit's parts share.
    pub shared: Arc<Shared>,
    /// What the LEDs show.
    pub leds: watch::Receiver<UnitState>,
    /// The simulated board, if any.
    pub sim: Option<Arc<SimBoard>>,
    /// The simulated modem, if any.
    pub sim_modem: Option<SimModem>,
    /// The bearer token, if required.
    pub token: Option<String>,
    /// The update service.
    pub updates: Updates,
    /// `[updates] allow_unsigned` is set (shown in the status).
    pub unsigned_allowed: bool,
}

/// `GET /api/v1/status`
#[derive(Serialize)]
pub struct StatusBody {
    unit_id: String,
    inputs: Vec<Terminal>,
    outputs: Vec<OutputTerminal>,
    alarm_output: u8,
    extended_io: String,
    leds: Vec<String>,
    modem: Option<ModemBody>,
    server: ServerBody,
    plugins: Vec<PluginBody>,
    /// Seconds left of the unit-wide wrong-password lockout; null when the
    /// unit is not locked.
    password_lockout_s: Option<u64>,
    /// Unsigned components are let in (`[updates] allow_unsigned`).
    unsigned_allowed: bool,
    /// Device settings (input names, delays, alarm numbers, interval...).
    settings: std::collections::BTreeMap<String, String>,
    /// Each quota's counter.
    quotas: Vec<crate::quota::Counter>,
}

#[derive(Serialize)]
struct Terminal {
    id: u8,
    /// Inputs: closed to COM; outputs: on. None if it cannot be read.
    active: Option<bool>,
}

#[derive(Serialize)]
struct OutputTerminal {
    id: u8,
    /// On; None if it cannot be read.
    active: Option<bool>,
    /// Who holds it (switched it on): a plugin or `http`.
    held_by: Option<String>,
    /// When it switches off by itself (ms since the Unix epoch).
    off_at_ms: Option<u64>,
    /// Who may switch it, highest priority first; empty: anyone.
    owners: Vec<String>,
}

#[derive(Serialize)]
struct ModemBody {
    answering: bool,
    sim: &'static str,
    signal_bars: u8,
    network: &'static str,
    operator: Option<String>,
}

#[derive(Serialize)]
struct ServerBody {
    connected: bool,
    /// The last sync failed (red LED, code 6).
    failing: bool,
    /// Outbox entries not yet acknowledged.
    outbox_depth: u32,
    /// Age of the oldest, in seconds.
    outbox_oldest_s: Option<u64>,
}

#[derive(Serialize)]
struct PluginBody {
    name: String,
    state: &'static str,
    faults: u32,
    last_fault: Option<String>,
    /// The field component's version; null for the config's.
    version: Option<String>,
    on_probation: bool,
}

/// `PUT /api/v1/outputs/{n}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputBody {
    on: bool,
    /// Seconds it stays on (0.1 to 86400), then off by itself.
    for_s: Option<f64>,
}

/// `PUT /api/v1/sim/inputs/{n}`
#[derive(Deserialize)]
pub struct InputBody {
    closed: bool,
}

/// `POST /api/v1/sim/sms`
#[derive(Deserialize)]
pub struct SmsBody {
    from: String,
    text: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn status(State(api): State<Api>) -> Json<StatusBody> {
    let s = &api.shared;
    let board = &s.board;
    let engine = LedEngine::new(api.leds.borrow().clone(), Instant::now());
    let modem = s.modem.borrow().clone().map(|m| ModemBody {
        answering: m.answering,
        sim: m.sim.name(),
        signal_bars: m.signal_bars,
        network: m.network.name(),
        operator: m.operator,
    });
    Json(StatusBody {
        unit_id: s.state.unit_id().unwrap_or_default(),
        inputs: (1..=board.input_count())
            .map(|id| Terminal {
                id,
                active: board
                    .read_input(InputId(id))
                    .ok()
                    .map(|c| c == Contact::Closed),
            })
            .collect(),
        outputs: {
            let holds = s.outputs.holds().borrow().clone();
            (1..=board.output_count())
                .map(|id| OutputTerminal {
                    id,
                    active: board.read_output(OutputId(id)).ok(),
                    held_by: holds.get(&id).map(|h| h.by.clone()),
                    off_at_ms: holds.get(&id).and_then(|h| h.off_at_ms),
                    owners: s.outputs.owners(id).to_vec(),
                })
                .collect()
        },
        alarm_output: board.alarm_output().0,
        extended_io: format!("{:?}", *board.card().borrow()).to_lowercase(),
        leds: leds::LEDS.iter().map(|&l| engine.describe(l)).collect(),
        modem,
        server: {
            let outbox = s.outbox.summary();
            let link = *s.link.borrow();
            ServerBody {
                connected: link.connected,
                failing: link.failing,
                outbox_depth: outbox.depth,
                outbox_oldest_s: outbox.oldest_s,
            }
        },
        plugins: s
            .plugin_health()
            .into_iter()
            .map(|h| PluginBody {
                name: h.name,
                state: h.state.name(),
                faults: h.faults,
                last_fault: h.last_fault,
                version: h.version,
                on_probation: h.on_probation,
            })
            .collect(),
        password_lockout_s: s.device_status().password_lockout_s,
        unsigned_allowed: api.unsigned_allowed,
        settings: s
            .state
            .settings("")
            .unwrap_or_default()
            .into_iter()
            .collect(),
        quotas: s.quotas.counters(),
    })
}

/// A JSON request body. A bad one (not JSON, wrong fields or types, no
/// JSON content type, too large) is a 400 with a JSON `error`, as every
/// other refusal here is; axum's own answers are plain text, some 422.
pub struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| Body(value))
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

/// A terminal number in the path (`/outputs/{n}`); anything else is a 400
/// with a JSON `error`.
pub struct TerminalId(u8);

impl<S: Send + Sync> FromRequestParts<S> for TerminalId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<u8>::from_request_parts(parts, state)
            .await
            .map(|Path(n)| TerminalId(n))
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

async fn set_output(
    State(api): State<Api>,
    TerminalId(n): TerminalId,
    Body(body): Body<OutputBody>,
) -> Response {
    let time = match (body.on, body.for_s.map(larm_rules::outputs::from_seconds)) {
        (_, None) => None,
        (false, Some(_)) => {
            return error(StatusCode::BAD_REQUEST, "`for_s` goes with `\"on\": true`");
        }
        (true, Some(Ok(ms))) => Some(Duration::from_millis(ms.into())),
        (true, Some(Err(why))) => return error(StatusCode::BAD_REQUEST, why),
    };
    // Board I/O and a durable write: off the async threads.
    let shared = api.shared.clone();
    let switched = tokio::task::spawn_blocking(move || {
        shared
            .outputs
            .switch(HTTP_SOURCE, n, Switch::new(body.on, time))
    })
    .await;
    let Ok(switched) = switched else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the switch failed");
    };
    match switched {
        Ok(action) => {
            api.shared.emit(action);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e @ (OutputError::Held { .. } | OutputError::NotOwner { .. })) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn sim_input(
    State(api): State<Api>,
    TerminalId(n): TerminalId,
    Body(body): Body<InputBody>,
) -> Response {
    let Some(sim) = &api.sim else {
        return error(
            StatusCode::NOT_FOUND,
            "the unit is not on the simulated board",
        );
    };
    let contact = if body.closed {
        Contact::Closed
    } else {
        Contact::Open
    };
    match sim.set_input(InputId(n), contact) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn sim_sms(State(api): State<Api>, Body(body): Body<SmsBody>) -> Response {
    let Some(modem) = &api.sim_modem else {
        return error(StatusCode::NOT_FOUND, "the unit has no simulated modem");
    };
    modem.deliver_sms(&body.from, &body.text);
    StatusCode::ACCEPTED.into_response()
}

/// A component as a request body, up to the largest larmd reads; a larger
/// one is a 413 with a JSON `error`.
pub struct ComponentBody(bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for ComponentBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        bytes::Bytes::from_request(request, state)
            .await
            .map(ComponentBody)
            .map_err(|e| error(e.status(), e.body_text()))
    }
}

/// The 400 for a path that names no plugin.
fn not_a_plugin_name() -> Response {
    error(StatusCode::BAD_REQUEST, "not a plugin name")
}

fn update_error(e: &UpdateError) -> Response {
    let status = match e {
        UpdateError::NoSuchPlugin(_) => StatusCode::NOT_FOUND,
        UpdateError::Disabled => StatusCode::FORBIDDEN,
        UpdateError::NothingToRollBack(_) => StatusCode::CONFLICT,
        UpdateError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        UpdateError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

async fn plugins(State(api): State<Api>) -> Response {
    Json(api.updates.list().await).into_response()
}

async fn install(
    State(api): State<Api>,
    Path(name): Path<String>,
    ComponentBody(body): ComponentBody,
) -> Response {
    if !crate::config::is_plugin_name(&name) {
        return not_a_plugin_name();
    }
    match api.updates.install(&name, body.to_vec(), "http").await {
        Ok(installed) => Json(installed).into_response(),
        Err(e) => update_error(&e),
    }
}

async fn rollback(State(api): State<Api>, Path(name): Path<String>) -> Response {
    if !crate::config::is_plugin_name(&name) {
        return not_a_plugin_name();
    }
    match api.updates.rollback(&name).await {
        Ok(()) => Json(serde_json::json!({ "outcome": "rolled-back" })).into_response(),
        Err(e) => update_error(&e),
    }
}

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let sent = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // In constant time: how long a refusal takes says nothing of how
        // much of the token was right.
        let right = sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(token.as_bytes())));
        if !right {
            return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        }
    }
    next.run(request).await
}

/// The most connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's head, or keep an idle
/// connection open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take, body and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an answer may wait for the client to read it: a client that
/// sends requests and never reads the answers is let go after this.
pub const WRITE_TIMEOUT: Duration = HEADER_TIMEOUT;

/// A request that takes longer than [`REQUEST_TIMEOUT`] is answered 408.
async fn time_limit(request: Request, next: Next) -> Response {
    tokio::time::timeout(REQUEST_TIMEOUT, next.run(request))
        .await
        .unwrap_or_else(|_| error(StatusCode::REQUEST_TIMEOUT, "the request took too long"))
}

/// The API's routes.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/outputs/{n}", put(set_output))
        .route("/api/v1/plugins", get(plugins))
        .route(
            "/api/v1/plugins/{name}",
            put(install).layer(axum::extract::DefaultBodyLimit::max(
                crate::state::MAX_COMPONENT_BYTES as usize,
            )),
        )
        .route("/api/v1/plugins/{name}/rollback", post(rollback))
        .route("/api/v1/sim/inputs/{n}", put(sim_input))
        .route("/api/v1/sim/sms", post(sim_sms))
        .layer(middleware::from_fn_with_state(api.clone(), authorize))
        .layer(middleware::from_fn(time_limit))
        .with_state(api)
}

/// A connection whose writes fail when one makes no progress for
/// [`WRITE_TIMEOUT`]: hyper waits for a write for ever, so a client that
/// never reads would hold its connection slot.
struct WriteDeadline<S> {
    inner: S,
    /// Since the first write that could not go on.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            stalled: None,
        }
    }

    /// `poll`, unless it has been pending for [`WRITE_TIMEOUT`].
    fn bounded<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future;
        use std::task::Poll;
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client reads no answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        this.bounded(cx, poll)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.bounded(cx, poll)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_shutdown(cx);
        this.bounded(cx, poll)
    }
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, api: Api) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    tracing::info!("HTTP API on http://{}", listener.local_addr()?);
    let router = router(api);
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!("HTTP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "HTTP: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(WriteDeadline::new(stream)), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "HTTP connection: {e}");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_answer_nobody_reads_gives_up_and_a_slow_reader_is_served() {
        let (ours, theirs) = tokio::io::duplex(64);
        let mut conn = WriteDeadline::new(ours);
        // Bounded, so a write that waits for ever fails the test.
        let stuck = tokio::time::timeout(3 * WRITE_TIMEOUT, conn.write_all(&[0; 1024]))
            .await
            .expect("the write never gave up")
            .unwrap_err();
        assert_eq!(stuck.kind(), std::io::ErrorKind::TimedOut);
        drop(theirs);

        // Reading 64 bytes every half timeout keeps every write going.
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = WriteDeadline::new(ours);
        let reader = tokio::spawn(async move {
            let (mut got, mut buf) = (0, [0; 64]);
            while got < 1024 {
                tokio::time::sleep(WRITE_TIMEOUT / 2).await;
                got += theirs.read(&mut buf).await.unwrap();
            }
            got
        });
        conn.write_all(&[0; 1024]).await.unwrap();
        let read = tokio::time::timeout(WRITE_TIMEOUT * 20, reader).await;
        assert_eq!(read.expect("the reader never got it all").unwrap(), 1024);
    }
}
