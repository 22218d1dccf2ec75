//! One builder for the configs the tests run larmd with, so the plugin
//! entries and their grants are written once.

use std::fmt;

/// A unit's config, section by section, in the order given (TOML wants
/// plain sections before the `[[plugins]]` entries).
#[derive(Default)]
pub struct UnitConfig {
    sections: Vec<String>,
}

impl UnitConfig {
    /// An empty config: the simulated board, no modem, no plugins.
    pub fn new() -> Self {
        Self::default()
    }

    /// `[name]` with the TOML lines in `body`.
    pub fn section(mut self, name: &str, body: &str) -> Self {
        self.sections.push(format!("[{name}]\n{body}"));
        self
    }

    /// Adds the TOML line `line` to the section `[name]` given before.
    pub fn with_line(mut self, name: &str, line: &str) -> Self {
        let header = format!("[{name}]\n");
        let section = self
            .sections
            .iter_mut()
            .find(|s| s.starts_with(&header))
            .unwrap_or_else(|| panic!("no section [{name}]"));
        section.push('\n');
        section.push_str(line);
        self
    }

    /// The modem simulator with `profile` (`ec2x`, `sim800`), and the
    /// `[modem]` lines in `extra`.
    pub fn sim_modem(self, profile: &str, extra: &str) -> Self {
        self.section("modem", &format!("simulator = \"{profile}\"\n{extra}"))
    }

    /// A `[[plugins]]` entry.
    pub fn plugin(mut self, plugin: Plugin) -> Self {
        self.sections.push(plugin.to_string());
        self
    }

    /// The three default plugins, with the grants the built-in config gives
    /// them; alarms go to `phone` by SMS.
    pub fn standard_plugins(self, phone: &str) -> Self {
        self.plugin(Plugin::sms_commands())
            .plugin(Plugin::input_rules().config(&format!("\"alarm.sms\" = \"{phone}\"")))
            .plugin(Plugin::server_adapter())
    }
}

impl fmt::Display for UnitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sections.join("\n"))
    }
}

/// One `[[plugins]]` entry.
pub struct Plugin {
    name: String,
    source: String,
    grants: String,
    limits: String,
    config: String,
    /// More keys of the entry itself (`bypass_quotas = true`).
    keys: String,
}

impl Plugin {
    /// A plugin built into larmd, with the TOML grant lines `grants`.
    pub fn builtin(name: &str, builtin: &str, grants: &str) -> Self {
        Self {
            name: name.into(),
            source: format!("builtin = \"{builtin}\""),
            grants: grants.into(),
            limits: String::new(),
            config: String::new(),
            keys: String::new(),
        }
    }

    /// A guest component built for the tests (see [`super::guest`]).
    pub fn guest(name: &str, guest: &str, grants: &str) -> Self {
        Self::file(name, &super::guest(guest), grants)
    }

    /// A component file.
    pub fn file(name: &str, file: &std::path::Path, grants: &str) -> Self {
        Self {
            name: name.into(),
            source: format!("file = {:?}", file.display().to_string()),
            grants: grants.into(),
            limits: String::new(),
            config: String::new(),
            keys: String::new(),
        }
    }

    /// The standard SMS command set, with every grant its commands use.
    pub fn sms_commands() -> Self {
        Self::builtin(
            "sms-commands",
            "std-sms-commands",
            "password = true\nsms = \"any\"\noutputs = \"any\"\nserver = true\n\
             settings = \"write\"\nsystem = [\"restart-modem\", \"restart-unit\", \"factory-reset\"]",
        )
    }

    /// The standard input rules.
    pub fn input_rules() -> Self {
        Self::builtin(
            "input-rules",
            "std-input-rules",
            "outputs = \"any\"\nsms = \"any\"\ncalls = \"any\"\nserver = true\nsettings = \"read\"",
        )
    }

    /// The standard server adapter, with Home Assistant discovery on.
    pub fn server_adapter() -> Self {
        Self::builtin(
            "server-adapter",
            "std-server-adapter",
            "outputs = \"any\"\nserver = true\nsettings = \"write\"",
        )
        .config("home_assistant = true")
    }

    /// The example rule: output 1 follows input 1.
    pub fn follow() -> Self {
        Self::guest("follow", "follow-input", "outputs = [1]")
    }

    /// Sets the plugin's `[plugins.limits]` to the TOML lines given.
    pub fn limits(mut self, lines: &str) -> Self {
        self.limits = lines.into();
        self
    }

    /// Adds TOML lines to the `[[plugins]]` entry itself (`quota = {...}`).
    pub fn keys(mut self, lines: &str) -> Self {
        self.keys.push_str(lines);
        self.keys.push('\n');
        self
    }

    /// Adds TOML lines to the plugin's `[plugins.config]`.
    pub fn config(mut self, lines: &str) -> Self {
        self.config.push_str(lines);
        self.config.push('\n');
        self
    }
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[[plugins]]\nname = \"{}\"\n{}\n{}[plugins.grants]\n{}\n",
            self.name, self.source, self.keys, self.grants
        )?;
        if !self.limits.is_empty() {
            write!(f, "[plugins.limits]\n{}\n", self.limits)?;
        }
        if !self.config.is_empty() {
            write!(f, "[plugins.config]\n{}", self.config)?;
        }
        Ok(())
    }
}
