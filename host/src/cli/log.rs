//! How `larmd` logs: plain lines for the people at its console, full
//! tracing for services and bug reports.
//!
//! tracing-subscriber's formats print each event with its timestamp,
//! module path and every field: what a journal or a log search wants, and a
//! flood at a console. The plain format prints what the unit does, one line
//! each: the local time, the level when it is a warning or an error, the
//! plugin it concerns and the event's message. tracing-subscriber has no
//! such format, so it is written here; the fields stay in the full and JSON
//! formats.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The log's format (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One plain line per thing the unit does (the default at a console).
    Plain,
    /// tracing's full lines: time, level, module and every field (the
    /// default when `RUST_LOG` is set).
    Full,
    /// One JSON object per event, with every field.
    Json,
}

/// Sets the log up on stderr. `RUST_LOG` filters it (by default `info`)
/// and, without `format`, chooses the full format over the plain one.
pub fn init(format: Option<Format>) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let format = format.unwrap_or(if from_env.is_some() {
        Format::Full
    } else {
        Format::Plain
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(from_env.unwrap_or_else(|| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        Format::Plain => builder.event_format(Plain).init(),
        Format::Full => builder.init(),
        Format::Json => builder.json().init(),
    }
}

/// The plain format's events.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        writeln!(
            writer,
            "{}",
            line(&time_of_day(), *event.metadata().level(), &fields)
        )
    }
}

/// An event's line, after its time of day.
fn line(time: &str, level: Level, fields: &Fields) -> String {
    let mut line = format!("{time}  ");
    match level {
        Level::ERROR => line.push_str("error: "),
        Level::WARN => line.push_str("warning: "),
        _ => {}
    }
    if let Some(plugin) = &fields.plugin {
        let _ = write!(line, "{plugin}: ");
    }
    line.push_str(&fields.message);
    line
}

/// The local time of day, `HH:MM:SS` (UTC where the time zone is unknown).
fn time_of_day() -> String {
    jiff::Zoned::now().strftime("%H:%M:%S").to_string()
}

/// The fields the plain format shows: the message, and the plugin.
#[derive(Default)]
struct Fields {
    message: String,
    plugin: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            // A message is `format_args!`, whose Debug is its text.
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "plugin" => self.plugin = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "plugin" => self.plugin = Some(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_time_the_level_the_plugin_and_the_message() {
        let fields = Fields {
            message: "refused output 3: not in grants".into(),
            plugin: Some("door".into()),
        };
        assert_eq!(
            line("14:37:46", Level::WARN, &fields),
            "14:37:46  warning: door: refused output 3: not in grants"
        );
        let fields = Fields {
            message: "output 3 on (by sms-commands)".into(),
            plugin: None,
        };
        assert_eq!(
            line("14:37:46", Level::INFO, &fields),
            "14:37:46  output 3 on (by sms-commands)"
        );
    }

    #[test]
    fn the_time_of_day_is_hours_minutes_and_seconds() {
        let time = time_of_day();
        assert_eq!(time.len(), 8, "{time}");
        assert!(
            time.bytes().enumerate().all(|(i, b)| if i % 3 == 2 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }),
            "{time}"
        );
    }
}
