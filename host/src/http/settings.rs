//! `PUT /api/v1/settings` with `{"input.1.name": "Door", "alarm.sms":
//! "+46701234567", "input.3.delay-s": null}`: changes device settings (null
//! puts one back to its default), checked by the same rules as SMS and
//! server commands ([`crate::unit::Shared::change_settings`]), all in one
//! transaction or none, the first problem named in the 400.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use larm_rules::settings::{INTERVAL_KEY, interval_min};

use super::{Api, Body, error};
use crate::config::HTTP_SOURCE;
use crate::state::StateError;
use crate::unit::Action;
use crate::unit::shared::SettingsError;

/// The most settings one request changes: every setting of a 16-input unit.
pub const MAX_CHANGES: usize = 128;

pub(super) async fn change(
    State(api): State<Api>,
    Body(changes): Body<BTreeMap<String, Option<String>>>,
) -> Response {
    if changes.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no settings to change");
    }
    if changes.len() > MAX_CHANGES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_CHANGES} settings at once"),
        );
    }
    // A durable write: off the async threads.
    let shared = api.shared.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let list: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        shared
            .change_settings(HTTP_SOURCE, &list, &[])
            .map(|()| changes)
    })
    .await;
    let changes = match stored {
        Ok(Ok(changes)) => changes,
        Ok(Err(SettingsError::Invalid(why))) => return error(StatusCode::BAD_REQUEST, why),
        Ok(Err(SettingsError::State(e @ StateError::Full { .. }))) => {
            return error(StatusCode::CONFLICT, e.to_string());
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the change failed"),
    };
    // The server link takes a new interval at once, as after `CONINTVL`.
    if let Some(minutes) = changes
        .get(INTERVAL_KEY)
        .and_then(|v| interval_min(v.as_deref()?).ok())
    {
        api.shared.emit(Action::SetInterval {
            by: HTTP_SOURCE.into(),
            minutes,
        });
    }
    StatusCode::NO_CONTENT.into_response()
}
