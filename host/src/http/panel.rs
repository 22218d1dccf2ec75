//! The web panel: the unit's front panel in a browser, live from the event
//! stream. Three static files (`panel/`), embedded in larmd at build time,
//! so there is no build step and nothing to install beside the binary.
//! They hold nothing of the unit's, so they are served without the token;
//! the page asks for it, and shows nothing but the login until it has it.
//!
//! Every answer forbids framing and scripts from elsewhere: the panel only
//! talks to the larmd that served it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Api;

const INDEX: &str = include_str!("panel/index.html");
const SCRIPT: &str = include_str!("panel/panel.js");
const STYLE: &str = include_str!("panel/panel.css");

/// One embedded file, with its type and the panel's security headers.
fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// `/`, `/panel.js` and `/panel.css`.
pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/panel.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/panel.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}
