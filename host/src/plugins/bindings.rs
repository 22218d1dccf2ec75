//! Host bindings generated from `wit/` (the one source of truth for the
//! plugin contract): the capabilities plugins import, and one set of export
//! bindings per plugin world.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "capabilities",
    // No serde: what is stored on disk has its own types (`outbox::record`).
    additional_derives: [PartialEq],
});

/// Generates a world's bindings, reusing the capability bindings above so
/// every world shares one set of host traits and types.
macro_rules! world_bindings {
    ($module:ident, $world:literal) => {
        #[doc = concat!("Bindings for the `", $world, "` world.")]
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../wit",
                world: $world,
                additional_derives: [PartialEq],
                with: {
                    "larm:plugin/types": super::larm::plugin::types,
                    "larm:plugin/log": super::larm::plugin::log,
                    "larm:plugin/clock": super::larm::plugin::clock,
                    "larm:plugin/timers": super::larm::plugin::timers,
                    "larm:plugin/io": super::larm::plugin::io,
                    "larm:plugin/sms": super::larm::plugin::sms,
                    "larm:plugin/voice": super::larm::plugin::voice,
                    "larm:plugin/status": super::larm::plugin::status,
                    "larm:plugin/password": super::larm::plugin::password,
                    "larm:plugin/settings": super::larm::plugin::settings,
                    "larm:plugin/kv": super::larm::plugin::kv,
                    "larm:plugin/server": super::larm::plugin::server,
                    "larm:plugin/system": super::larm::plugin::system,
                },
            });
        }
    };
}

world_bindings!(input_rule, "input-rule");
world_bindings!(sms_commands, "sms-commands");
world_bindings!(server_adapter, "server-adapter");

use larm::plugin::types::{NetworkType, PluginState, SimState, UpdateOutcome};
use larm_rules::names;

// The words for states live in larm-rules; these map the generated types
// onto them and back (the outbox stores them).

/// Maps a generated enum onto its larm-rules twin and back, variant by
/// variant of the same name.
macro_rules! twin {
    ($generated:ident, $rules:ty, [$($variant:ident),+]) => {
        impl From<$generated> for $rules {
            fn from(value: $generated) -> Self {
                match value {
                    $($generated::$variant => <$rules>::$variant,)+
                }
            }
        }

        impl From<$rules> for $generated {
            fn from(value: $rules) -> Self {
                match value {
                    $(<$rules>::$variant => $generated::$variant,)+
                }
            }
        }

        impl $generated {
            /// The word the HTTP API and the console use for it.
            pub fn name(self) -> &'static str {
                <$rules>::from(self).name()
            }
        }
    };
}

twin!(
    SimState,
    names::Sim,
    [Ready, PinRequired, Locked, NotInserted, Error, Unknown]
);
twin!(NetworkType, names::Network, [Lte, Umts, Gsm, None]);
twin!(
    PluginState,
    names::Plugin,
    [Running, Restarted, Quarantined]
);
twin!(
    UpdateOutcome,
    names::Update,
    [Installed, Committed, Refused, RolledBack]
);

/// A report in one line (`alarm input 1 "Door": "Door alarm"`), as the
/// console shows it and scenarios expect it: what a server gets, without
/// the fields that change from run to run (times, uptime). Plugins' text
/// is escaped.
impl std::fmt::Display for larm::plugin::types::Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use larm::plugin::types::Report;
        match self {
            Report::Status(_) => write!(f, "status"),
            Report::Alarm(a) => write!(f, "alarm input {} {:?}: {:?}", a.input, a.name, a.text),
            Report::Restore(a) => write!(f, "restore input {} {:?}: {:?}", a.input, a.name, a.text),
            Report::OutputChanged(o) => write!(
                f,
                "output {} {} by {}",
                o.output,
                if o.on { "on" } else { "off" },
                o.by
            ),
            Report::PluginHealth(h) => {
                write!(
                    f,
                    "health {} {} faults {}",
                    h.name,
                    h.state.name(),
                    h.faults
                )
            }
            Report::Update(u) => write!(f, "update {} {}", u.plugin, u.outcome.name()),
        }
    }
}
