//! `[server]` (the MQTT link) and `[alarm]` (the escalation route).

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A broker address from `url`: `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// TLS (`mqtts`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (1883 for `mqtt`, 8883 for `mqtts` when not given).
    pub port: u16,
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: axum::http::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("mqtt") => false,
            Some("mqtts") => true,
            _ => return Err(format!("`{s}`: use mqtt://host:port or mqtts://host:port")),
        };
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(format!("`{s}`: a broker URL has no path"));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{s}` names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 8883 } else { 1883 });
        Ok(Self { tls, host, port })
    }
}

impl<'de> Deserialize<'de> for BrokerUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[server]`: the MQTT broker the unit reports to.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: Spanned<BrokerUrl>,
    /// First topic level; the unit's topics are `<prefix>/<unit-id>/...`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// MQTT client id; the unit's id when not given.
    pub client_id: Option<String>,
    /// Broker user name.
    pub username: Option<String>,
    /// Broker password.
    pub password: Option<String>,
    /// PEM file of the CA that signed the broker's certificate (`mqtts`;
    /// relative to the config file). For a public CA, the system bundle,
    /// e.g. `/etc/ssl/certs/ca-certificates.crt`.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// PEM client certificate, for brokers that require one.
    pub client_cert: Option<Spanned<PathBuf>>,
    /// PEM key of `client_cert`.
    pub client_key: Option<Spanned<PathBuf>>,
    /// Keep the connection up between syncs (else the unit connects every
    /// `CONINTVL` minutes, and at once for alarms and `CONNECT`).
    #[serde(default)]
    pub stay_connected: bool,
    /// Connection interval in minutes until `CONINTVL` sets one; 0 = never.
    #[serde(default = "default_interval")]
    pub interval_min: u32,
    /// How long a sync stays connected after its last message, in seconds,
    /// for the server's pending settings and commands to arrive.
    #[serde(default = "default_linger")]
    pub linger_s: u64,
    /// MQTT keep-alive, in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: NonZeroU64,
    /// Longest wait between two attempts to reach the broker, in seconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_s: NonZeroU64,
    /// Downlink messages larger than this are rejected (and logged).
    #[serde(default = "default_max_downlink")]
    pub max_downlink_bytes: usize,
}

fn default_prefix() -> String {
    "larm".into()
}

fn default_interval() -> u32 {
    60
}

fn default_linger() -> u64 {
    5
}

fn default_keep_alive() -> NonZeroU64 {
    NonZeroU64::new(60).unwrap()
}

fn default_retry_max() -> NonZeroU64 {
    NonZeroU64::new(300).unwrap()
}

fn default_max_downlink() -> usize {
    16 * 1024
}

/// A step of an alarm's escalation route.
#[derive(Debug, Deserialize, serde::Serialize, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The server report.
    Server,
    /// The alarm SMS.
    Sms,
    /// The alarm call.
    Call,
}

/// `[alarm]`: how an alarm's report, SMS and calls relate.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AlarmConfig {
    /// Escalation order, e.g. `["server", "sms", "call"]`: a step is taken
    /// only when the one before it failed (not acknowledged within
    /// `escalate_after_s`), and dropped once an earlier one succeeded.
    /// Steps left out, or an empty route, go out at once, as docs/unit.md's
    /// unit does.
    #[serde(default = "no_route")]
    pub route: Spanned<Vec<Step>>,
    /// How long a step has to be acknowledged before the next is taken.
    #[serde(default = "default_escalate")]
    pub escalate_after_s: NonZeroU64,
}

fn default_escalate() -> NonZeroU64 {
    NonZeroU64::new(120).unwrap()
}

fn no_route() -> Spanned<Vec<Step>> {
    Spanned::new(0..0, Vec::new())
}

impl Default for AlarmConfig {
    fn default() -> Self {
        Self {
            route: no_route(),
            escalate_after_s: default_escalate(),
        }
    }
}

impl ServerConfig {
    /// Checks what serde cannot, resolving file paths against `base`.
    pub(super) fn validate(&mut self, base: &Path) -> Result<(), super::Invalid> {
        let url_span = self.url.span();
        if let Err(why) = larm_rules::settings::check_interval(self.interval_min) {
            return Err((None, "server.interval_min".into(), why));
        }
        if !self.url.get_ref().tls && (self.ca_file.is_some() || self.client_cert.is_some()) {
            return Err((
                Some(url_span),
                "server.url".into(),
                "certificates are given but the URL is not mqtts://".into(),
            ));
        }
        if self.url.get_ref().tls && self.ca_file.is_none() {
            return Err((
                Some(url_span),
                "server.ca_file".into(),
                "mqtts:// needs `ca_file`: the CA that signed the broker's certificate (for a public CA, /etc/ssl/certs/ca-certificates.crt)".into(),
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err((
                None,
                "server.client_key".into(),
                "give both `client_cert` and `client_key`, or neither".into(),
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(['#', '+']) {
            return Err((
                None,
                "server.prefix".into(),
                "the prefix must be a non-empty topic without wildcards".into(),
            ));
        }
        for (key, file) in [
            ("server.ca_file", &mut self.ca_file),
            ("server.client_cert", &mut self.client_cert),
            ("server.client_key", &mut self.client_key),
        ] {
            if let Some(file) = file {
                let resolved = base.join(file.get_ref());
                if !resolved.is_file() {
                    return Err((
                        Some(file.span()),
                        key.into(),
                        format!("{} not found", resolved.display()),
                    ));
                }
                *file.get_mut() = resolved;
            }
        }
        Ok(())
    }
}

impl AlarmConfig {
    /// Checks the route has no step twice.
    pub(super) fn validate(&self) -> Result<(), super::Invalid> {
        let route = self.route.get_ref();
        let unique: std::collections::HashSet<_> = route.iter().collect();
        if unique.len() != route.len() {
            return Err((
                Some(self.route.span()),
                "alarm.route".into(),
                "a step appears twice in the route".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let url: BrokerUrl = "mqtt://broker.local:1884".parse().unwrap();
        assert_eq!(
            url,
            BrokerUrl {
                tls: false,
                host: "broker.local".into(),
                port: 1884
            }
        );
        let url: BrokerUrl = "mqtts://10.0.0.1".parse().unwrap();
        assert_eq!((url.tls, url.port), (true, 8883));
        for bad in ["http://x", "mqtt://", "broker:1883", "mqtt://x/topic"] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
    }
}
