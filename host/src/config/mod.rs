//! The unit's TOML config: types, loading and validation.
//!
//! Loading never half-succeeds: a file that does not parse, has an unknown
//! key, a bad value or names a missing plugin file is rejected with an error
//! naming the file, line, column and key.

mod grants;
mod server;
mod sharing;
mod updates;

pub use grants::{Grants, Scope, SettingsAccess, SystemAction};
pub use server::{AlarmConfig, BrokerUrl, ServerConfig, Step};
pub use sharing::{HTTP_SOURCE, OutputConfig, Quota, QuotasConfig, RESERVED_NAMES};
pub use updates::UpdatesConfig;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::ops::Range;
use std::path::{Path, PathBuf};

use firmware_bridge::gpio::GpioConfig;
use firmware_bridge::modem::sim::Profile;
use larm_rules::PhoneNumber;
use serde::Deserialize;
use toml::Spanned;

/// Where a config error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The text of that line, shown under the message.
    pub text: String,
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error(
        "{file}{}: {}{message}{}",
        DisplayLocation(.location),
        DisplayKey(.key),
        DisplayLine(.location)
    )]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// Where in it, when known.
        location: Option<Location>,
        /// Dotted path of the offending key (`plugins[0].grants.outputs`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

struct DisplayLocation<'a>(&'a Option<Location>);

impl fmt::Display for DisplayLocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, ":{}:{}", l.line, l.column),
            None => Ok(()),
        }
    }
}

/// The offending line with a caret under the column.
struct DisplayLine<'a>(&'a Option<Location>);

impl fmt::Display for DisplayLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => {
                let gutter = l.line.to_string();
                let pad = " ".repeat(gutter.len());
                write!(
                    f,
                    "\n {pad} |\n {gutter} | {}\n {pad} | {}^",
                    l.text,
                    " ".repeat(l.column - 1)
                )
            }
            None => Ok(()),
        }
    }
}

struct DisplayKey<'a>(&'a Option<String>);

impl fmt::Display for DisplayKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, "key `{key}`: "),
            None => Ok(()),
        }
    }
}

/// A problem validation found: where (a span of the text), the key, and
/// what is wrong.
type Invalid = (Option<Range<usize>>, String, String);

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where state (settings, plugin key-value stores) and the compiled-plugin
    /// cache live. Relative paths are relative to the config file.
    pub data_dir: Option<PathBuf>,
    /// The modem's serial port.
    pub modem: Option<ModemConfig>,
    /// The I/O board.
    #[serde(default)]
    pub board: BoardConfig,
    /// The local HTTP API.
    pub http: Option<HttpConfig>,
    /// The server the unit reports to.
    pub server: Option<ServerConfig>,
    /// How an alarm's server report, SMS and calls escalate.
    #[serde(default)]
    pub alarm: AlarmConfig,
    /// Plugin runtime limits and supervision.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Who may command the unit by SMS.
    #[serde(default)]
    pub sms: SmsConfig,
    /// Field updates: trusted signing keys and probation.
    #[serde(default)]
    pub updates: UpdatesConfig,
    /// Who may switch each output, by priority (`[outputs.N]`).
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputConfig>,
    /// Unit-wide limits on SMS, calls and reports.
    #[serde(default)]
    pub quotas: QuotasConfig,
    /// The plugins to run, in order (for SMS command sets, the order in
    /// which they are asked to claim a message).
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// The owners of each output, checked (from `outputs`).
    #[serde(skip)]
    pub owners: BTreeMap<u8, Vec<String>>,
    /// The text it was read from.
    #[serde(skip)]
    text: String,
}

/// `[modem]`: a serial port, or the modem simulator on a pseudo-terminal.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawModem")]
pub struct ModemConfig {
    /// Where the modem is.
    pub link: ModemLink,
    /// Baud rate.
    pub baud: u32,
    /// How often the modem's status (signal, network, SIM) is read, in seconds.
    pub status_interval_s: NonZeroU64,
}

/// Where the modem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemLink {
    /// A serial device (relative paths are relative to the config file).
    Port(PathBuf),
    /// The modem simulator, on a pseudo-terminal.
    Simulator(Profile),
}

/// `[modem]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModem {
    /// Serial device, e.g. `/dev/ttyUSB2`.
    port: Option<PathBuf>,
    /// Instead of `port`: the modem simulator (`"ec2x"` or `"sim800"`).
    simulator: Option<String>,
    #[serde(default = "default_baud")]
    baud: u32,
    #[serde(default = "default_status_interval")]
    status_interval_s: NonZeroU64,
}

impl TryFrom<RawModem> for ModemConfig {
    type Error = String;

    fn try_from(raw: RawModem) -> Result<Self, String> {
        let link = match (raw.port, raw.simulator) {
            (Some(port), None) => ModemLink::Port(port),
            (None, Some(name)) => {
                ModemLink::Simulator(Profile::by_name(&name).ok_or_else(|| {
                    format!(
                        "no modem simulator `{}` (use \"ec2x\" or \"sim800\")",
                        name.escape_debug()
                    )
                })?)
            }
            _ => {
                return Err(
                    "give the modem's `port`, or `simulator = \"ec2x\"` (or \"sim800\"), not both"
                        .into(),
                );
            }
        };
        Ok(Self {
            link,
            baud: raw.baud,
            status_interval_s: raw.status_interval_s,
        })
    }
}

fn default_status_interval() -> NonZeroU64 {
    NonZeroU64::new(30).unwrap()
}

fn default_baud() -> u32 {
    115_200
}

/// Which board implementation runs the I/O.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BoardKind {
    /// The simulated board.
    #[default]
    Sim,
    /// GPIO on Linux.
    Linux,
}

/// `[board]`
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawBoard")]
pub struct BoardConfig {
    /// The board to run.
    pub source: BoardSource,
    /// Number of inputs (simulated board).
    pub inputs: u8,
    /// Number of outputs, the ALARM output last (simulated board).
    pub outputs: u8,
    /// Debounce time of the inputs, in milliseconds.
    pub debounce_ms: u64,
    /// The simulated board's extended I/O card, if it has one.
    pub extended: Option<SimCard>,
    /// Simulated board: inputs closed to COM at its first start (NC loops
    /// that are wired); after that, the inputs as they were when larmd
    /// stopped (kept in the state).
    pub closed_at_start: Vec<u8>,
}

/// `[board]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    #[serde(default)]
    kind: BoardKind,
    #[serde(default = "default_inputs")]
    inputs: u8,
    #[serde(default = "default_outputs")]
    outputs: u8,
    #[serde(default = "default_debounce_ms")]
    debounce_ms: u64,
    extended: Option<SimCard>,
    #[serde(default)]
    closed_at_start: Vec<u8>,
    gpio: Option<GpioConfig>,
}

impl TryFrom<RawBoard> for BoardConfig {
    type Error = String;

    fn try_from(raw: RawBoard) -> Result<Self, String> {
        let source = match (raw.kind, raw.gpio) {
            (BoardKind::Sim, None) => BoardSource::Sim,
            (BoardKind::Sim, Some(_)) => {
                return Err("[board.gpio] is the wiring of kind = \"linux\"".into());
            }
            (BoardKind::Linux, Some(gpio)) => {
                if gpio.inputs.is_empty() || gpio.outputs.is_empty() {
                    return Err("the board needs at least one input and one output (the last output is ALARM)".into());
                }
                BoardSource::Linux(Box::new(gpio))
            }
            (BoardKind::Linux, None) => {
                return Err("a \"linux\" board needs its wiring in [board.gpio]".into());
            }
        };
        Ok(Self {
            source,
            inputs: raw.inputs,
            outputs: raw.outputs,
            debounce_ms: raw.debounce_ms,
            extended: raw.extended,
            closed_at_start: raw.closed_at_start,
        })
    }
}

impl BoardConfig {
    /// Which kind of board it is.
    pub fn kind(&self) -> BoardKind {
        match self.source {
            BoardSource::Sim => BoardKind::Sim,
            BoardSource::Linux(_) => BoardKind::Linux,
        }
    }

    /// How many inputs and outputs the board has, extended card included.
    pub fn terminals(&self) -> (u8, u8) {
        let ((inputs, outputs), card) = self.shape();
        let (card_inputs, card_outputs) = card.unwrap_or((0, 0));
        (
            inputs.saturating_add(card_inputs),
            outputs.saturating_add(card_outputs),
        )
    }

    /// The base board's (inputs, outputs), and the extended card's if one
    /// is fitted.
    pub fn shape(&self) -> ((u8, u8), Option<(u8, u8)>) {
        let count = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
        match &self.source {
            BoardSource::Linux(gpio) => (
                (count(gpio.inputs.len()), count(gpio.outputs.len())),
                gpio.card
                    .as_ref()
                    .map(|c| (count(c.inputs.len()), count(c.outputs.len()))),
            ),
            BoardSource::Sim => (
                (self.inputs, self.outputs),
                self.extended.map(|c| (c.inputs, c.outputs)),
            ),
        }
    }
}

/// The board a unit runs on.
#[derive(Debug, Clone, Default)]
pub enum BoardSource {
    /// The simulated board.
    #[default]
    Sim,
    /// GPIO on Linux, wired as given.
    Linux(Box<GpioConfig>),
}

/// `[board.extended]` on the simulated board.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct SimCard {
    /// Inputs on the card.
    pub inputs: u8,
    /// Outputs on the card.
    pub outputs: u8,
}

fn default_inputs() -> u8 {
    8
}

fn default_outputs() -> u8 {
    5
}

fn default_debounce_ms() -> u64 {
    5
}

impl Default for BoardConfig {
    fn default() -> Self {
        Self {
            source: BoardSource::Sim,
            inputs: default_inputs(),
            outputs: default_outputs(),
            debounce_ms: default_debounce_ms(),
            extended: None,
            closed_at_start: Vec::new(),
        }
    }
}

/// `[http]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; loopback port 8080 unless given.
    #[serde(default = "default_listen")]
    pub listen: Spanned<SocketAddr>,
    /// Bearer token clients must send; required unless `listen` is loopback.
    pub token: Option<String>,
}

impl HttpConfig {
    /// The token clients must send; an empty (or blank) one is none.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.trim().is_empty())
    }

    /// Reachable from other hosts without a token: refused.
    pub fn open_to_others(&self) -> bool {
        !self.listen.get_ref().ip().is_loopback() && self.token().is_none()
    }
}

fn default_listen() -> Spanned<SocketAddr> {
    Spanned::new(0..0, SocketAddr::from(([127, 0, 0, 1], 8080)))
}

/// `[sms]`: protection of the SMS command interface.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Wrong passwords from one sender before it is ignored.
    pub password_failures: NonZeroU32,
    /// How long, in seconds, a sender (or, after the unit's budget is
    /// spent, every untrusted sender) is then ignored.
    pub lockout_s: u64,
    /// Wrong passwords from all senders together within `unit_window_s`
    /// before every password command is ignored (senders can be spoofed).
    pub unit_password_failures: NonZeroU32,
    /// The window of `unit_password_failures`, in seconds.
    pub unit_window_s: NonZeroU64,
    /// Numbers whose commands still count during a unit-wide lockout.
    pub trusted: Vec<PhoneNumber>,
    /// If not empty, only these numbers may send commands; others are
    /// dropped (and logged) before any plugin sees them.
    pub allow_from: Vec<PhoneNumber>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            password_failures: NonZeroU32::new(5).unwrap(),
            lockout_s: 600,
            unit_password_failures: NonZeroU32::new(20).unwrap(),
            unit_window_s: NonZeroU64::new(600).unwrap(),
            trusted: Vec::new(),
            allow_from: Vec::new(),
        }
    }
}

/// `[runtime]`: defaults for every plugin; a plugin's `limits` override them.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// CPU deadline of one call into a plugin, in milliseconds.
    pub deadline_ms: NonZeroU64,
    /// Linear memory a plugin instance may grow to, in MiB.
    pub memory_mib: NonZeroU32,
    /// Faults within `fault_window_s` after which a plugin is quarantined.
    pub max_faults: NonZeroU32,
    /// The window, in seconds, over which faults are counted.
    pub fault_window_s: NonZeroU64,
    /// Address space reserved per plugin memory, in MiB (default: 4096 on
    /// 64-bit boards, `memory_mib` on 32-bit ones; a memory that grows past
    /// it is moved).
    pub memory_reservation_mib: Option<NonZeroU32>,
    /// Guard after each plugin memory, in KiB (default: 32768 on 64-bit
    /// boards; none on 32-bit ARM, where plugins run on Pulley, which
    /// checks every access).
    pub memory_guard_kib: Option<u32>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            deadline_ms: NonZeroU64::new(50).unwrap(),
            memory_mib: NonZeroU32::new(16).unwrap(),
            max_faults: NonZeroU32::new(3).unwrap(),
            fault_window_s: NonZeroU64::new(60).unwrap(),
            memory_reservation_mib: None,
            memory_guard_kib: None,
        }
    }
}

impl RuntimeConfig {
    /// The `[runtime]` of a config file, nothing else of it read or
    /// checked: what `larmd plugin compile --config` needs of a board's
    /// config, whose plugin files are not on the build machine.
    pub fn of_file(file: &Path) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct OnlyRuntime {
            #[serde(default)]
            runtime: RuntimeConfig,
        }
        Ok(deserialize::<OnlyRuntime>(&read_text(file)?, file)?.runtime)
    }

    /// The engine's memory layout these settings ask for, and the memory
    /// a plugin has by default (what a 32-bit board reserves per memory
    /// unless told otherwise). It depends on `[runtime]` alone, so a plugin
    /// precompiled for a unit's `[runtime]` loads there whatever its
    /// plugins' limits are.
    pub fn memory_layout(&self) -> (crate::plugins::runtime::MemoryLayout, u64) {
        let cap_mib = self.memory_mib.get();
        (
            crate::plugins::runtime::MemoryLayout {
                reservation: self
                    .memory_reservation_mib
                    .map(|m| u64::from(m.get()) << 20),
                guard: self.memory_guard_kib.map(|k| u64::from(k) << 10),
            },
            u64::from(cap_mib) << 20,
        )
    }
}

/// A plugin's limits, overriding `[runtime]`.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// See [`RuntimeConfig::deadline_ms`].
    pub deadline_ms: Option<NonZeroU64>,
    /// See [`RuntimeConfig::memory_mib`].
    pub memory_mib: Option<NonZeroU32>,
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawPlugin")]
pub struct PluginConfig {
    /// Unique name: in logs, status, and the plugin's private storage.
    pub name: Spanned<String>,
    /// Where its component comes from.
    pub source: PluginSource,
    /// What the plugin may do.
    pub grants: Grants,
    /// Overrides of `[runtime]` for this plugin.
    pub limits: Limits,
    /// The plugin's own quotas, on top of the unit's.
    pub quota: Quota,
    /// Only `[quotas.ceiling]` limits it (alarms).
    pub bypass_quotas: bool,
    /// The plugin's own settings, handed to its `init` as key/value pairs.
    pub config: toml::Table,
}

/// A `[[plugins]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Spanned<String>,
    /// A component file (relative to the config file), or...
    file: Option<Spanned<PathBuf>>,
    /// ...the name of a plugin embedded in `larmd`.
    builtin: Option<Spanned<String>>,
    #[serde(default)]
    grants: Grants,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    quota: Quota,
    #[serde(default)]
    bypass_quotas: bool,
    #[serde(default)]
    config: toml::Table,
}

impl TryFrom<RawPlugin> for PluginConfig {
    type Error = String;

    fn try_from(raw: RawPlugin) -> Result<Self, String> {
        let source = match (raw.file, raw.builtin) {
            (Some(file), None) => PluginSource::File(file),
            (None, Some(builtin)) => PluginSource::Builtin(builtin),
            (Some(_), Some(_)) => return Err("give either `file` or `builtin`, not both".into()),
            (None, None) => {
                return Err(format!(
                    "plugin `{}` needs `file` (a component) or `builtin` (a plugin built into larmd)",
                    raw.name.get_ref().escape_debug()
                ));
            }
        };
        Ok(Self {
            name: raw.name,
            source,
            grants: raw.grants,
            limits: raw.limits,
            quota: raw.quota,
            bypass_quotas: raw.bypass_quotas,
            config: raw.config,
        })
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A file, resolved against the config file's folder once loaded.
    File(Spanned<PathBuf>),
    /// Embedded in `larmd`.
    Builtin(Spanned<String>),
}

impl PluginConfig {
    /// This plugin's effective limits.
    pub fn effective_limits(&self, runtime: &RuntimeConfig) -> (NonZeroU64, NonZeroU32) {
        (
            self.limits.deadline_ms.unwrap_or(runtime.deadline_ms),
            self.limits.memory_mib.unwrap_or(runtime.memory_mib),
        )
    }

    /// The plugin's config table as its `init` receives it: key/value
    /// pairs sorted by key, nested tables joined with `.`, arrays of plain
    /// values joined with `,` (the WIT's `lifecycle.init` says so).
    pub fn init_config(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        flatten("", &self.config, &mut pairs);
        pairs.sort();
        pairs
    }
}

/// A config file's text, of bounded size.
pub(crate) fn read_text(file: &Path) -> Result<String, ConfigError> {
    read_text_bounded(file, crate::state::MAX_CONFIG_BYTES)
}

/// A text file of at most `max` bytes (config, scenario).
pub(crate) fn read_text_bounded(file: &Path, max: u64) -> Result<String, ConfigError> {
    crate::state::read_bounded(file, max)
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "is not UTF-8 text")
            })
        })
        .map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })
}

/// An error in `file` (whose text is `text`) at `span`, about `key`.
pub(crate) fn invalid(
    text: &str,
    file: &Path,
    span: Option<Range<usize>>,
    key: Option<String>,
    message: String,
) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        location: span.map(|s| location(text, s.start)),
        key,
        message,
    }
}

/// Deserializes config text; an error names the file, line and key.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| invalid(text, file, e.span(), None, e.message().trim().to_string()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        // A spanned value's path ends in the toml crate's private field
        // name: the user's key is the part before it.
        let key = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let inner = e.into_inner();
        let key = (key != ".").then_some(key);
        invalid(
            text,
            file,
            inner.span(),
            key,
            inner.message().trim().to_string(),
        )
    })
}

impl Config {
    /// The unit's defaults for device settings not set yet: the entries of
    /// plugin configs named like a device setting (std-input-rules takes
    /// `"input.2.mode" = "NC"` so), as the plugin that reads them falls back
    /// on them. What the API shows an input to be when nothing is set.
    /// The server's connection interval counts among them.
    pub fn setting_defaults(&self) -> BTreeMap<String, String> {
        let interval = self.server.as_ref().map(|s| {
            (
                larm_rules::settings::INTERVAL_KEY.to_string(),
                s.interval_min.to_string(),
            )
        });
        self.plugins
            .iter()
            .flat_map(|p| p.init_config())
            .filter(|(key, value)| larm_rules::settings::validate(key, value, u8::MAX).is_ok())
            .chain(interval)
            .collect()
    }

    /// Reads and validates a config file. `builtins` are the names of the
    /// plugins embedded in `larmd`.
    pub fn load(file: &Path, builtins: &[&str]) -> Result<Config, ConfigError> {
        Self::parse(&read_text(file)?, file, builtins)
    }

    /// Loads `file`. If it does not load but the last good copy of it
    /// (`<file>.last-good`, see [`keep_as_last_good`](Self::keep_as_last_good))
    /// does, that copy is used and the error returned beside it: the unit
    /// keeps working as it did, and shows the corrupt config (red LED
    /// steady).
    pub fn load_or_last_good(
        file: &Path,
        builtins: &[&str],
    ) -> Result<(Config, Option<ConfigError>), ConfigError> {
        match Self::load(file, builtins) {
            Ok(config) => Ok((config, None)),
            Err(error) => match std::fs::read_to_string(last_good(file)) {
                Ok(text) => match Self::parse(&text, file, builtins) {
                    Ok(config) => Ok((config, Some(error))),
                    Err(_) => Err(error),
                },
                Err(_) => Err(error),
            },
        }
    }

    /// Keeps the text this config was read from as `<file>.last-good`. Call
    /// it once the unit has started with it: only a config that ran is a
    /// good one to fall back on.
    pub fn keep_as_last_good(&self, file: &Path) {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let last_good = last_good(file);
        if let Err(e) = crate::state::write_atomically(dir, &last_good, self.text.as_bytes()) {
            tracing::warn!(
                "cannot keep {} as the last good config: {e}",
                last_good.display()
            );
        }
    }

    /// Parses and validates config text; `file` names it in errors and
    /// anchors relative paths.
    pub fn parse(text: &str, file: &Path, builtins: &[&str]) -> Result<Config, ConfigError> {
        let mut config: Config = deserialize(text, file)?;
        let base = file.parent().unwrap_or(Path::new("."));
        config
            .validate(base, builtins)
            .map_err(|(span, key, message)| invalid(text, file, span, Some(key), message))?;
        if let Some(dir) = &mut config.data_dir {
            *dir = base.join(&*dir);
        }
        config.text = text.to_string();
        Ok(config)
    }

    /// Checks what serde cannot, resolving plugin files against `base`.
    fn validate(&mut self, base: &Path, builtins: &[&str]) -> Result<(), Invalid> {
        if let Some(http) = &self.http
            && http.open_to_others()
        {
            return Err((
                Some(http.listen.span()),
                "http.token".into(),
                "an HTTP API reachable from other hosts needs `token` (clients send it as a bearer token)"
                    .into(),
            ));
        }
        if let Some(ModemConfig {
            link: ModemLink::Port(port),
            ..
        }) = &mut self.modem
        {
            *port = base.join(&*port);
        }
        if let Some(server) = &mut self.server {
            server.validate(base)?;
        }
        self.updates.validate(base)?;
        self.alarm.validate()?;
        let board = &self.board;
        if board.kind() == BoardKind::Sim && (board.inputs == 0 || board.outputs == 0) {
            return Err((
                None,
                "board".into(),
                "the board needs at least one input and one output (the last output is ALARM)"
                    .into(),
            ));
        }
        let (inputs, outputs) = self.board.terminals();
        if let Some(&bad) = self
            .board
            .closed_at_start
            .iter()
            .find(|&&n| n == 0 || n > inputs)
        {
            return Err((
                None,
                "board.closed_at_start".into(),
                format!("input {bad} does not exist (the board has inputs 1 to {inputs})"),
            ));
        }
        if let Some(dir) = &self.data_dir {
            let dir = base.join(dir);
            if dir.exists() && !dir.is_dir() {
                return Err((
                    None,
                    "data_dir".into(),
                    format!("{} is not a folder", dir.display()),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, plugin) in self.plugins.iter_mut().enumerate() {
            let key = |field: &str| format!("plugins[{i}].{field}");
            let name = plugin.name.get_ref();
            if !is_plugin_name(name) {
                return Err((
                    Some(plugin.name.span()),
                    key("name"),
                    format!(
                        "`{name}` is not a plugin name (use at most 64 letters, digits, - and _)"
                    ),
                ));
            }
            if let Scope::Only(ids) = &plugin.grants.outputs
                && let Some(&bad) = ids.iter().find(|&&n| n == 0 || n > outputs)
            {
                return Err((
                    Some(plugin.name.span()),
                    key("grants.outputs"),
                    format!("output {bad} does not exist (the board has outputs 1 to {outputs})"),
                ));
            }
            if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                return Err((
                    Some(plugin.name.span()),
                    key("name"),
                    format!(
                        "`{name}` is a name the unit uses for itself ({}); choose another",
                        RESERVED_NAMES.join(", ")
                    ),
                ));
            }
            if !names.insert(name.clone()) {
                return Err((
                    Some(plugin.name.span()),
                    key("name"),
                    format!("two plugins are named `{name}`"),
                ));
            }
            match &mut plugin.source {
                PluginSource::File(file) => {
                    let resolved = base.join(file.get_ref());
                    let problem = match std::fs::metadata(&resolved) {
                        Ok(m) if m.is_file() => None,
                        Ok(m) if m.is_dir() => Some("is a folder, not a component file"),
                        Ok(_) => Some("is not a regular file (a device or a pipe?)"),
                        Err(_) => Some("not found"),
                    };
                    if let Some(problem) = problem {
                        return Err((
                            Some(file.span()),
                            key("file"),
                            format!("component file {} {problem}", resolved.display()),
                        ));
                    }
                    *file.get_mut() = resolved;
                }
                PluginSource::Builtin(builtin) => {
                    if !builtins.contains(&builtin.get_ref().as_str()) {
                        return Err((
                            Some(builtin.span()),
                            key("builtin"),
                            format!(
                                "no built-in plugin `{}` (built in: {})",
                                builtin.get_ref(),
                                builtins.join(", ")
                            ),
                        ));
                    }
                }
            }
            if let Some(bad) = plugin.quota.too_large() {
                return Err((
                    Some(plugin.name.span()),
                    key(&format!("quota.{bad}")),
                    format!("at most {}", sharing::MAX_LIMIT),
                ));
            }
        }
        for (scope, quota) in [
            ("unit", &self.quotas.unit),
            ("ceiling", &self.quotas.ceiling),
        ] {
            if let Some(bad) = quota.too_large() {
                return Err((
                    None,
                    format!("quotas.{scope}.{bad}"),
                    format!("at most {}", sharing::MAX_LIMIT),
                ));
            }
        }
        let names: Vec<&str> = self
            .plugins
            .iter()
            .map(|p| p.name.get_ref().as_str())
            .collect();
        self.owners = sharing::output_owners(&self.outputs, outputs, &names, self.http.is_some())?;
        Ok(())
    }
}

/// Whether `name` can name a plugin: letters, digits, `-` and `_` (it
/// names log lines, a store, a folder and an MQTT topic level).
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where the last good copy of `file` is kept.
fn last_good(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.last-good", file.display()))
}

/// Adds the scalars of `table` to `pairs` as (dotted key, text).
fn flatten(prefix: &str, table: &toml::Table, pairs: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&key, inner, pairs),
            toml::Value::Array(items) => {
                let items: Vec<String> = items.iter().map(scalar).collect();
                pairs.push((key, items.join(",")));
            }
            other => pairs.push((key, scalar(other))),
        }
    }
}

/// A plain value as text: strings as they are, the rest as TOML writes it.
fn scalar(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Line and column (1-based) of a byte offset.
fn location(text: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let text = text.lines().nth(line - 1).unwrap_or_default().to_string();
    Location { line, column, text }
}
