//! Which world a component targets and whether this host can run it,
//! decided from the component's own type before it is ever instantiated.

use std::fmt;

use semver::Version;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package this host implements.
pub const PACKAGE: &str = "larm:plugin";

/// The version of `wit/`, read from it at build time.
pub fn host_version() -> Version {
    Version::parse(env!("LARM_WIT_VERSION")).expect("build.rs reads a semver version")
}

/// The kind of plugin a component is, by the world it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// World `input-rule` (exports `rule`).
    InputRule,
    /// World `sms-commands` (exports `commands`).
    SmsCommands,
    /// World `server-adapter` (exports `adapter`).
    ServerAdapter,
}

impl PluginKind {
    /// Every kind.
    pub const ALL: [PluginKind; 3] = [Self::InputRule, Self::SmsCommands, Self::ServerAdapter];

    /// The world's name in `wit/worlds.wit`.
    pub fn world(self) -> &'static str {
        match self {
            Self::InputRule => "input-rule",
            Self::SmsCommands => "sms-commands",
            Self::ServerAdapter => "server-adapter",
        }
    }

    /// The interface a component of this kind exports.
    pub fn export(self) -> &'static str {
        match self {
            Self::InputRule => "rule",
            Self::SmsCommands => "commands",
            Self::ServerAdapter => "adapter",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// Why a component cannot run here.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CompatError {
    /// It exports none of the larm plugin interfaces.
    #[error(
        "the component targets no larm world: it exports [{}], but a plugin must export one of {}",
        .exports.join(", "),
        expected_exports()
    )]
    UnknownWorld {
        /// What it exports instead.
        exports: Vec<String>,
    },
    /// It exports more than one plugin interface.
    #[error("the component exports several plugin interfaces ({}); a plugin targets one world", .0.join(", "))]
    SeveralWorlds(Vec<String>),
    /// An export or import is at a version this host cannot serve.
    #[error(
        "`{item}` is at version {found}, but this host speaks {PACKAGE}@{host} (compatible: {range})",
        range = compatible_range(.host)
    )]
    Version {
        /// The import or export, with its version.
        item: String,
        /// The version the component was built against.
        found: Version,
        /// This host's version.
        host: Version,
    },
    /// It imports a larm interface this host does not have.
    #[error("the component imports `{0}`, which {PACKAGE}@{host} does not define", host = host_version())]
    UnknownInterface(String),
}

fn expected_exports() -> String {
    let host = host_version();
    PluginKind::ALL
        .iter()
        .map(|k| format!("{PACKAGE}/{}@{host}", k.export()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn compatible_range(host: &Version) -> String {
    if host.major == 0 {
        format!("0.{}.0 to {host}", host.minor)
    } else {
        format!("{}.0.0 to {host}", host.major)
    }
}

/// Whether a component built against `found` runs on a host at `host`: the
/// same semver-compatible line, and not newer than the host (a newer minor
/// may rely on things this host lacks).
fn compatible(found: &Version, host: &Version) -> bool {
    let same_line = if host.major == 0 {
        found.major == 0 && found.minor == host.minor
    } else {
        found.major == host.major
    };
    same_line && found <= host && found.pre.is_empty()
}

/// Splits `larm:plugin/rule@0.1.0` into (`rule`, 0.1.0); None for other packages.
fn larm_item(name: &str) -> Option<(&str, Option<Version>)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(match rest.split_once('@') {
        Some((iface, version)) => (iface, Version::parse(version).ok()),
        None => (rest, None),
    })
}

/// The host's larm interfaces a plugin may import.
const HOST_INTERFACES: &[&str] = &[
    "types", "log", "clock", "timers", "io", "sms", "voice", "status", "password", "settings",
    "kv", "server", "system",
];

/// Decides which world `component` targets and checks every larm import and
/// export against this host's version. Non-larm imports (WASI) are checked
/// when the component is linked.
pub fn check(engine: &Engine, component: &Component) -> Result<PluginKind, CompatError> {
    let host = host_version();
    let ty = component.component_type();
    let check_version = |name: &str, version: Option<Version>| match version {
        Some(found) if compatible(&found, &host) => Ok(()),
        Some(found) => Err(CompatError::Version {
            item: name.to_string(),
            found,
            host: host.clone(),
        }),
        None => Err(CompatError::Version {
            item: name.to_string(),
            found: Version::new(0, 0, 0),
            host: host.clone(),
        }),
    };

    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let mut kinds = Vec::new();
    for name in &exports {
        let Some((iface, version)) = larm_item(name) else {
            continue;
        };
        // Every larm export (the world's interface and `lifecycle`) must be
        // of this host's line: a component built against an older contract
        // is refused here, naming the version it was built for.
        check_version(name, version)?;
        if let Some(kind) = PluginKind::ALL.into_iter().find(|k| k.export() == iface) {
            kinds.push((kind, name.clone()));
        }
    }
    let kind = match kinds.as_slice() {
        [] => return Err(CompatError::UnknownWorld { exports }),
        [(kind, _)] => *kind,
        several => {
            return Err(CompatError::SeveralWorlds(
                several.iter().map(|(_, n)| n.clone()).collect(),
            ));
        }
    };

    for (name, _) in ty.imports(engine) {
        let Some((iface, version)) = larm_item(name) else {
            continue;
        };
        if !HOST_INTERFACES.contains(&iface) {
            return Err(CompatError::UnknownInterface(name.to_string()));
        }
        check_version(name, version)?;
    }
    Ok(kind)
}

/// The larm interfaces `component` imports (`voice`, `sms`...): what it
/// would call, for checking against its grants before it runs.
pub fn larm_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| larm_item(name).map(|(iface, _)| iface.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn semver_lines() {
        assert!(compatible(&v("0.1.0"), &v("0.1.3")));
        assert!(compatible(&v("0.1.3"), &v("0.1.3")));
        assert!(!compatible(&v("0.1.4"), &v("0.1.3")));
        assert!(!compatible(&v("0.2.0"), &v("0.1.3")));
        assert!(!compatible(&v("1.0.0"), &v("0.1.3")));
        assert!(compatible(&v("1.0.0"), &v("1.2.0")));
        assert!(!compatible(&v("2.0.0"), &v("1.2.0")));
        assert!(!compatible(&v("1.1.0-rc1"), &v("1.2.0")));
    }

    #[test]
    fn names() {
        assert_eq!(
            larm_item("larm:plugin/rule@0.1.0"),
            Some(("rule", Some(v("0.1.0"))))
        );
        assert_eq!(larm_item("wasi:io/poll@0.2.6"), None);
        assert_eq!(larm_item("larm:plugin/rule"), Some(("rule", None)));
    }
}
