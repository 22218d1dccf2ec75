//! The local HTTP API (axum), JSON, and the web panel that uses it.
//!
//! - `GET /`: the web panel ([`panel`]): static files embedded in larmd.
//! - `GET /api/v1/status`: inputs (names, NO/NC, delay), outputs (and who
//!   holds them), LEDs as data, modem, server link, outbox, plugins and
//!   their health, device settings, quota counters ([`status`]).
//! - `GET /api/v1/events`: every change as it happens, as Server-Sent
//!   Events, resumable with `Last-Event-ID` ([`stream`]).
//! - `PUT /api/v1/outputs/{n}` with `{"on": true}`, or `{"on": true,
//!   "for_s": 30}` for a timed output: switches an output, as the source
//!   `http` of `[outputs.N] owners` (409 while a higher one holds it).
//! - `PUT /api/v1/settings` with `{"key": "value", ...}`: changes device
//!   settings, checked as SMS commands are ([`settings`]).
//! - `GET /api/v1/plugins`: each plugin, what it runs (the config's
//!   component or one installed in the field), probation, the one before.
//! - `PUT /api/v1/plugins/{name}` with a signed component as the body:
//!   installs it (see [`crate::updates`]); `POST
//!   /api/v1/plugins/{name}/rollback` goes back to the one before.
//! - On the simulated board and modem, its controls ([`sim`]): inputs,
//!   SMS, calls, the extended card, the modem's signal, network and SIM.
//!
//! With `[http] token` set, every request under `/api/` needs
//! `Authorization: Bearer <token>`; the panel's files do not (they hold
//! nothing of the unit's), and the panel asks for the token.
//!
//! No client can hold the API: at most [`MAX_CONNECTIONS`] connections are
//! open at once, at most [`MAX_PER_PEER`] of them from one address other
//! than loopback (one more is closed at once), a request's head must arrive
//! within [`HEADER_TIMEOUT`] (also the most a kept-alive connection may sit
//! idle), a whole request, body included, within [`REQUEST_TIMEOUT`], and
//! a write of its answer within [`WRITE_TIMEOUT`] (hyper has no write
//! timeout: [`WriteDeadline`]).
//! `axum::serve` sets none of these, so the accept loop is ours, on hyper.

mod panel;
mod settings;
mod sim;
mod status;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use firmware_bridge::board::SimBoard;
use firmware_bridge::leds::UnitState;
use firmware_bridge::modem::sim::SimModem;
use serde::Deserialize;
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
    /// The config has a server link (shown in the status).
    pub server_configured: bool,
}

/// `PUT /api/v1/outputs/{n}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputBody {
    on: bool,
    /// Seconds it stays on (0.1 to 86400), then off by itself.
    for_s: Option<f64>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
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

/// Why a browser's request is not one of the panel's own, if it is not:
/// one sent by a page of another site (its `Origin` is not this host: a
/// cross-site form posting a rollback), or, with no token to stop it, one
/// that reached the unit through another site's name (DNS rebinding:
/// `Host: evil.example` resolving to 127.0.0.1). Clients that are not
/// browsers send no `Origin`, and reach the unit by its address.
fn foreign(request: &Request, open: bool) -> Option<&'static str> {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    // What the browser says of it goes first: `cross-site` also for what
    // sends no Origin (`<img src=/api/v1/events>` on another site's page),
    // `same-origin` also behind a proxy that rewrites `Host`.
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Some("a request from another site's page");
    }
    if let Some(origin) = headers.get(header::ORIGIN).filter(|_| site.is_none()) {
        let authority = origin.to_str().ok().and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        });
        if authority.is_none()
            || !authority
                .zip(host)
                .is_some_and(|(a, h)| a.eq_ignore_ascii_case(h))
        {
            return Some("a request from another site's page");
        }
    }
    if open {
        let name = host.map(|h| match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        });
        let ours = name.is_none_or(|n| {
            n.trim_end_matches('.').eq_ignore_ascii_case("localhost")
                || n.parse::<std::net::IpAddr>().is_ok()
                || n.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok()
        });
        if !ours {
            return Some("the unit is not reached by that name without a token");
        }
    }
    None
}

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(why) = foreign(&request, api.token.is_none()) {
        return error(StatusCode::FORBIDDEN, why);
    }
    if let Some(token) = &api.token {
        let sent = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme's name is case-insensitive (RFC 9110).
            .and_then(|v| {
                v.get(..7)
                    .filter(|s| s.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            });
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
/// The most connections open at once from one address on the network, so
/// one host cannot take every slot (a browser opens about six).
pub const MAX_PER_PEER: usize = 16;

/// How many connections each address on the network has open. Loopback
/// is not counted: a process on the unit is not a host on the network.
#[derive(Clone, Default)]
struct Peers(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// A connection counted against its address, until dropped.
struct PeerSlot(Peers, Option<std::net::IpAddr>);

impl Peers {
    /// A slot for a connection from `ip`, if it has one left. IPv6
    /// addresses count by their /64, as one host has a whole one.
    fn admit(&self, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let ip = match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => std::net::IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
            v4 => v4,
        };
        if ip.is_loopback() {
            return Some(PeerSlot(self.clone(), None));
        }
        let mut open = self.0.lock().unwrap();
        let count = open.entry(ip).or_default();
        if *count >= MAX_PER_PEER {
            return None;
        }
        *count += 1;
        Some(PeerSlot(self.clone(), Some(ip)))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Some(ip) = self.1 else { return };
        let mut open = (self.0).0.lock().unwrap();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}
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

/// The API's routes, and the panel's.
pub fn router(api: Api) -> Router {
    let api_routes = Router::new()
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/events", get(stream::events))
        .route("/api/v1/outputs/{n}", put(set_output))
        .route(
            "/api/v1/settings",
            put(settings::change).layer(axum::extract::DefaultBodyLimit::max(64 * 1024)),
        )
        .route("/api/v1/plugins", get(plugins))
        .route(
            "/api/v1/plugins/{name}",
            put(install).layer(axum::extract::DefaultBodyLimit::max(
                crate::state::MAX_COMPONENT_BYTES as usize,
            )),
        )
        .route("/api/v1/plugins/{name}/rollback", post(rollback))
        .route("/api/v1/sim/inputs/{n}", put(sim::input))
        .route("/api/v1/sim/sms", post(sim::sms))
        .route("/api/v1/sim/call", post(sim::call))
        .route("/api/v1/sim/card", put(sim::card))
        .route("/api/v1/sim/modem", put(sim::modem))
        .layer(axum::Extension(stream::Slots::new()))
        .layer(middleware::from_fn_with_state(api.clone(), authorize));
    panel::routes()
        .merge(api_routes)
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
    let peers = Peers::default();
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
        let Some(slot) = peers.admit(peer.ip()) else {
            tracing::warn!(%peer, "HTTP: {MAX_PER_PEER} connections open from its address; closing a new one");
            continue;
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
            drop((permit, slot));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut request = Request::builder().uri("/api/v1/status");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn one_address_cannot_take_every_connection() {
        let peers = Peers::default();
        let host: std::net::IpAddr = "192.168.1.50".parse().unwrap();
        let slots: Vec<_> = (0..MAX_PER_PEER)
            .map(|_| peers.admit(host).unwrap())
            .collect();
        assert!(peers.admit(host).is_none(), "one over its share");
        assert!(
            peers.admit("192.168.1.51".parse().unwrap()).is_some(),
            "another host"
        );
        // Loopback, mapped or not, is not counted.
        let local: Vec<_> = (0..MAX_PER_PEER)
            .flat_map(|_| ["127.0.0.1", "::ffff:127.0.0.1"])
            .map(|ip| peers.admit(ip.parse().unwrap()))
            .collect();
        assert!(local.iter().all(Option::is_some), "loopback is not counted");
        let v6: Vec<_> = (1..=MAX_PER_PEER)
            .map(|i| {
                peers
                    .admit(format!("2001:db8::{i:x}").parse().unwrap())
                    .unwrap()
            })
            .collect();
        assert!(
            peers.admit("2001:db8::99".parse().unwrap()).is_none(),
            "one /64, one host"
        );
        drop((slots, v6, local));
        assert!(peers.admit(host).is_some(), "given back");
        assert!(peers.0.lock().unwrap().len() <= 1, "no entries left behind");
    }

    #[test]
    fn only_the_units_own_pages_and_names_get_through() {
        let own = [
            ("host", "192.168.1.20:8080"),
            ("origin", "http://192.168.1.20:8080"),
        ];
        assert_eq!(foreign(&request(&own), true), None);
        assert_eq!(foreign(&request(&[("host", "LOCALHOST")]), true), None);
        assert_eq!(foreign(&request(&[("host", "[fe80::1]:80")]), true), None);
        assert_eq!(foreign(&request(&[]), true), None, "curl over HTTP/1.0");
        for headers in [
            &[
                ("host", "192.168.1.20:8080"),
                ("origin", "http://evil.example"),
            ][..],
            &[("host", "192.168.1.20:8080"), ("origin", "null")],
            &[
                ("host", "192.168.1.20:8080"),
                ("origin", "http://192.168.1.20:8081"),
            ],
            &[("origin", "http://192.168.1.20:8080")],
        ] {
            assert!(foreign(&request(headers), false).is_some(), "{headers:?}");
        }
        assert_eq!(foreign(&request(&[("host", "localhost.:80")]), true), None);
        // The browser's word for it goes first.
        let proxied = [
            ("host", "10.0.0.5"),
            ("origin", "https://unit.example"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(foreign(&request(&proxied), false), None);
        // A rebinding page is same-origin to itself: its name still counts.
        let rebound = [
            ("host", "evil.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(foreign(&request(&rebound), true).is_some());
        let img = [("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")];
        assert!(foreign(&request(&img), true).is_some());
        let sibling = [("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")];
        assert!(foreign(&request(&sibling), true).is_some(), "another port");
        // By name: only without a token (a rebinding page cannot know it).
        let named = [("host", "unit.example:8080")];
        assert!(foreign(&request(&named), true).is_some());
        assert_eq!(foreign(&request(&named), false), None);
    }

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
