//! `larmd plugin new` and `larmd wit`: a plugin project that builds on its
//! own, anywhere on disk, with larm's WIT files in it.
//!
//! The templates are files under `cli/new/`, embedded in larmd, with
//! `{{name}}`-style fields filled in here. The CI script `.ci/integrator`
//! builds and tests every one of them from an empty folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use larm_host::plugins::compat::{self, PluginKind};

/// larm's WIT package, as `larmd wit` writes it.
const WIT: [(&str, &str); 3] = [
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// Writes larm's WIT package (`larm:plugin`) into `dir`.
pub fn write_wit(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    for (file, text) in WIT {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with wit-bindgen: `cargo build`.
    Rust,
    /// Python, with componentize-py.
    Python,
}

/// The world of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum World {
    /// Turns input edges into actions.
    InputRule,
    /// Answers SMS commands and calls.
    SmsCommands,
    /// Maps reports to server messages and back.
    ServerAdapter,
}

impl World {
    fn kind(self) -> PluginKind {
        match self {
            World::InputRule => PluginKind::InputRule,
            World::SmsCommands => PluginKind::SmsCommands,
            World::ServerAdapter => PluginKind::ServerAdapter,
        }
    }
}

/// Whether `name` can name a new plugin: a WIT package name (lowercase
/// words of letters and digits, each starting with a letter, joined by
/// `-`), a crate name and a plugin name at once.
fn is_project_name(name: &str) -> bool {
    name.len() <= 64
        && larm_host::config::is_plugin_name(name)
        && !larm_host::config::RESERVED_NAMES.contains(&name)
        && name.split('-').all(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The grants and config of the new plugin's entry in its `unit.toml`.
fn entry(world: World, lang: Lang) -> String {
    let grants = match world {
        World::InputRule => "outputs = \"any\"\n",
        World::SmsCommands => {
            "password = true       # verify the SMS password\nsms = \"any\"           # replies go to whoever sent the command\n"
        }
        World::ServerAdapter => "outputs = \"any\"\nserver = true\n",
    };
    let limits = match lang {
        Lang::Rust => "",
        Lang::Python => {
            "# CPython inside the component takes 12-16 MiB of memory at start:\n# [runtime]'s 16 MiB fits it barely, so it gets room to grow.\nlimits = { memory_mib = 32 }\n"
        }
    };
    let config = match world {
        World::InputRule => {
            "\n[plugins.config]\ninputs = [1, 2, 3]    # arrives at init as (\"inputs\", \"1,2,3\")\n"
        }
        _ => "",
    };
    format!(
        "{limits}\n[plugins.grants]          # all it may do: anything else is refused\n{grants}{config}"
    )
}

/// `larmd plugin new NAME --world W --lang L`: writes the project into
/// `./NAME`, which must not exist.
pub fn new(name: &str, world: World, lang: Lang) -> anyhow::Result<()> {
    if !is_project_name(name) {
        bail!(
            "`{}` cannot name a plugin: use lowercase words of letters and digits, each starting with a letter, joined by `-` (e.g. `pump-guard`), at most 64 characters",
            name.escape_debug()
        );
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        bail!(
            "{} exists already: choose another name, or remove it",
            dir.display()
        );
    }
    let krate = name.replace('-', "_");
    let world_name = world.kind().world();
    let component = match lang {
        Lang::Rust => format!("target/wasm32-wasip2/release/{krate}.wasm"),
        Lang::Python => format!("{name}.wasm"),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &krate)
            .replace("{{world}}", world_name)
            .replace("{{wit_version}}", &compat::host_version().to_string())
            .replace("{{component}}", &component)
            .replace("{{first}}", &entry(world, lang))
    };
    let scenario = match world {
        World::InputRule => include_str!("new/input-rule.toml"),
        World::SmsCommands => include_str!("new/sms-commands.toml"),
        World::ServerAdapter => include_str!("new/server-adapter.toml"),
    };
    let mut files: Vec<(&str, String)> = vec![
        ("wit/world.wit", fill(include_str!("new/world.wit"))),
        ("tests/first.toml", fill(scenario)),
        ("unit.toml", fill(include_str!("new/unit.toml"))),
    ];
    match lang {
        Lang::Rust => {
            let lib = match world {
                World::InputRule => include_str!("new/rust/input-rule.rs"),
                World::SmsCommands => include_str!("new/rust/sms-commands.rs"),
                World::ServerAdapter => include_str!("new/rust/server-adapter.rs"),
            };
            files.extend([
                ("Cargo.toml", fill(include_str!("new/rust/Cargo.toml"))),
                (
                    ".cargo/config.toml",
                    fill(include_str!("new/rust/cargo-config.toml")),
                ),
                (".gitignore", fill(include_str!("new/rust/gitignore"))),
                ("README.md", fill(include_str!("new/rust/README.md"))),
                ("src/lib.rs", fill(lib)),
            ]);
        }
        Lang::Python => {
            let app = match world {
                World::InputRule => include_str!("new/python/input-rule.py"),
                World::SmsCommands => include_str!("new/python/sms-commands.py"),
                World::ServerAdapter => include_str!("new/python/server-adapter.py"),
            };
            files.extend([
                (".gitignore", fill(include_str!("new/python/gitignore"))),
                ("README.md", fill(include_str!("new/python/README.md"))),
                ("app.py", fill(app)),
            ]);
        }
    }
    for (file, text) in &files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("making {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    write_wit(&dir.join("wit/deps/larm-plugin"))?;
    let build = match lang {
        Lang::Rust => "cargo build --release".to_string(),
        Lang::Python => format!("componentize-py -d wit -w plugin componentize app -o {name}.wasm"),
    };
    println!("made {name}/: a plugin of the {world_name} world, in {lang:?}. Next:\n");
    println!("    cd {name}");
    println!("    {build}");
    println!("    larmd plugin test {component} tests/first.toml");
    println!("    larmd dev --config unit.toml");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_project_name;

    #[test]
    fn a_project_name_is_a_wit_package_and_a_plugin_name() {
        for good in ["pump-guard", "a", "rule2", "x1-y2"] {
            assert!(is_project_name(good), "{good}");
        }
        for bad in [
            "Pump",
            "2rule",
            "pump_guard",
            "pump--guard",
            "-a",
            "a-",
            "http",
            "",
            "a-1",
        ] {
            assert!(!is_project_name(bad), "{bad}");
        }
    }
}
