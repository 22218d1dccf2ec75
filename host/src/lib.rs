//! larmd: the larm unit's runtime.
//!
//! - [`config`]: the TOML config, loaded and validated.
//! - [`http`]: the local HTTP API.
//! - [`modem`]: the modem task between the driver and the event loop.
//! - [`outbox`]: the durable outbox for reports, SMS and calls.
//! - [`plugins`]: the WebAssembly plugin runtime.
//! - [`server`]: the server link (MQTT).
//! - [`state`]: persisted settings, password and plugin stores.
//! - [`unit`]: the running unit and its event loop.
//! - [`updates`]: field updates: signed components, install, probation, rollback.

pub mod config;
pub mod http;
pub mod modem;
pub mod outbox;
pub mod outputs;
pub mod plugins;
pub mod quota;
pub mod server;
pub mod state;
pub mod testkit;
pub mod unit;
pub mod updates;
