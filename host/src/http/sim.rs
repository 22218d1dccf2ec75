//! The simulator's controls, on the simulated board and modem only (404
//! elsewhere): what the console's `close N`, `sms`, `ring`, `card` and
//! `modem` commands do, for the web panel.
//!
//! - `PUT /api/v1/sim/inputs/{n}` `{"closed": true}`
//! - `POST /api/v1/sim/sms` `{"from": "+46…", "text": "1234 STATUS"}`
//! - `POST /api/v1/sim/call` `{"from": "+46…"}`
//! - `PUT /api/v1/sim/card` `{"present": false}`
//! - `PUT /api/v1/sim/modem` `{"csq": 5, "network": "gsm", "sim": "pin"}`,
//!   each field optional; all are checked before any is applied.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use firmware_bridge::board::{Contact, InputId, SimBoard};
use firmware_bridge::modem::sim::{SimCard, SimModem, SimNetwork};
use larm_rules::PhoneNumber;
use serde::Deserialize;

use super::{Api, Body, TerminalId, error};

/// `PUT /api/v1/sim/inputs/{n}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    closed: bool,
}

/// `POST /api/v1/sim/sms`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsBody {
    from: String,
    text: String,
}

/// `POST /api/v1/sim/call`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    from: String,
}

/// `PUT /api/v1/sim/card`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBody {
    present: bool,
}

/// `PUT /api/v1/sim/modem`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemBody {
    /// Signal as `+CSQ` reports it: 0-31, 99 unknown.
    csq: Option<u8>,
    /// `none`, `gsm` or `lte`.
    network: Option<String>,
    /// `ready`, `pin` or `absent`.
    sim: Option<String>,
}

/// Why a control was refused: the answer's status and words.
type Refused = (StatusCode, String);

/// The answer to a control: its status, or the refusal as a JSON `error`.
fn answer(outcome: Result<StatusCode, Refused>) -> Response {
    match outcome {
        Ok(done) => done.into_response(),
        Err((status, why)) => error(status, why),
    }
}

fn the_board(api: &Api) -> Result<&SimBoard, Refused> {
    api.sim.as_deref().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "the unit is not on the simulated board".into(),
        )
    })
}

fn the_modem(api: &Api) -> Result<&SimModem, Refused> {
    api.sim_modem.as_ref().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "the unit has no simulated modem".into(),
        )
    })
}

fn bad(why: impl Into<String>) -> Refused {
    (StatusCode::BAD_REQUEST, why.into())
}

/// A caller's number as the network would give it: one form, digits and
/// `+` only, so it cannot add lines to what the modem says.
fn caller(from: &str) -> Result<String, Refused> {
    PhoneNumber::parse(from)
        .map(|n| n.to_string())
        .map_err(|e| bad(format!("`from`: {e}")))
}

pub(super) async fn input(
    State(api): State<Api>,
    TerminalId(n): TerminalId,
    Body(body): Body<InputBody>,
) -> Response {
    answer((|| {
        let contact = if body.closed {
            Contact::Closed
        } else {
            Contact::Open
        };
        the_board(&api)?
            .set_input(InputId(n), contact)
            .map_err(|e| bad(e.to_string()))?;
        Ok(StatusCode::NO_CONTENT)
    })())
}

pub(super) async fn sms(State(api): State<Api>, Body(body): Body<SmsBody>) -> Response {
    answer((|| {
        let modem = the_modem(&api)?;
        let from = caller(&body.from)?;
        let most = larm_rules::settings::MAX_VALUE;
        if body.text.chars().count() > most {
            return Err(bad(format!("`text`: at most {most} characters")));
        }
        modem.deliver_sms(&from, &body.text);
        Ok(StatusCode::ACCEPTED)
    })())
}

pub(super) async fn call(State(api): State<Api>, Body(body): Body<CallBody>) -> Response {
    answer((|| {
        let modem = the_modem(&api)?;
        modem.ring(&caller(&body.from)?);
        Ok(StatusCode::ACCEPTED)
    })())
}

pub(super) async fn card(State(api): State<Api>, Body(body): Body<CardBody>) -> Response {
    answer((|| {
        if the_board(&api)?.set_card_present(body.present) {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err((
                StatusCode::CONFLICT,
                "this board has no extended card ([board.extended] in the config)".into(),
            ))
        }
    })())
}

pub(super) async fn modem(State(api): State<Api>, Body(body): Body<ModemBody>) -> Response {
    answer((|| {
        let modem = the_modem(&api)?;
        if body.csq.is_some_and(|csq| csq > 31 && csq != 99) {
            return Err(bad("`csq`: 0 to 31, or 99 (unknown)"));
        }
        let network = body
            .network
            .as_deref()
            .map(|n| SimNetwork::by_name(n).ok_or_else(|| bad("`network`: none, gsm or lte")))
            .transpose()?;
        let sim = body
            .sim
            .as_deref()
            .map(|s| SimCard::by_name(s).ok_or_else(|| bad("`sim`: ready, pin or absent")))
            .transpose()?;
        // Checked whole above; applied together here.
        if let Some(csq) = body.csq {
            modem.set_signal(csq);
        }
        if let Some(network) = network {
            modem.set_network(network);
        }
        if let Some(sim) = sim {
            modem.set_sim(sim);
        }
        Ok(StatusCode::NO_CONTENT)
    })())
}
