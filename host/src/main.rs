//! `larmd`: the larm unit's daemon and its command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use larm_host::config::{BoardKind, Config};
use larm_host::plugins::compat;
use larm_host::plugins::runtime::Runtime;
use larm_host::plugins::{self, builtin_names};
use larm_host::unit::{Ending, Shared, Unit};

mod cli;

#[derive(Parser)]
#[command(name = "larmd", version, about = "The larm alarm unit's runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The log's format on stderr: plain lines (the default), or tracing's
    /// full lines or JSON, with every field (the default with `RUST_LOG`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<cli::log::Format>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the unit (with no config: a standard unit on the simulated
    /// board and modem, `examples/sim.toml`).
    Run {
        /// The config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Says again that `[updates] allow_unsigned` is meant, on a real
        /// board (`kind = "linux"`).
        #[arg(long)]
        allow_unsigned: bool,
        /// Serves the HTTP API and the web panel on ADDR (e.g.
        /// 127.0.0.1:8080), in place of the config's `[http] listen`.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Appends every event the plugins receive, and every action they
        /// take, to FILE as a scenario (`larmd plugin test --replay FILE`).
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// Swaps in a plugin whose component file changes (a new build).
        #[arg(long)]
        watch: bool,
    },
    /// Runs the unit for plugin development: `run --watch`, so each new
    /// build of a plugin is swapped in.
    Dev {
        /// The config file (e.g. the `unit.toml` of `larmd plugin new`).
        #[arg(long)]
        config: PathBuf,
        /// As for `run`.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// As for `run`.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Writes larm's WIT files (the plugin contract, `larm:plugin`) into DIR.
    Wit {
        /// The folder, e.g. `wit/deps/larm-plugin` of a plugin project.
        #[arg(long)]
        out: PathBuf,
    },
    /// Checks a config file and the components it names, then exits.
    Check {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// As for `run`.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Modem tools.
    Modem {
        #[command(subcommand)]
        command: ModemCommand,
    },
    /// Simulators, to try a config without hardware.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Subcommand)]
enum ModemCommand {
    /// Opens a modem port and prints SIM state, signal, network, operator and IMEI.
    Probe {
        /// The serial port (`/dev/ttyUSB2`, or the simulator's pty).
        #[arg(long)]
        port: PathBuf,
        /// Baud rate.
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// Runs the modem simulator on a pseudo-terminal and prints its path.
    Modem {
        /// `ec2x` (LTE) or `sim800` (GSM only).
        #[arg(long, default_value = "ec2x")]
        profile: String,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Makes a plugin project in ./NAME that builds on its own: the
    /// plugin, its WIT files, a first test, a unit config running it.
    New {
        /// Its name: lowercase words joined by `-` (`pump-guard`).
        name: String,
        /// What kind of plugin.
        #[arg(long, value_enum)]
        world: cli::new::World,
        /// Its language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: cli::new::Lang,
    },
    /// Runs a component through scenarios on a simulated unit with a
    /// virtual clock, and prints how its actions differ from the expected.
    Test {
        /// The component, then the scenarios (with --builtin: the scenarios).
        #[arg(value_name = "FILE.wasm SCENARIO.toml", required_unless_present_all = ["builtin", "replay"])]
        paths: Vec<PathBuf>,
        /// A built-in plugin (`std-input-rules`, ...) instead of a file.
        #[arg(long)]
        builtin: Option<String>,
        /// The unit config the plugin runs in (over a scenario's `unit`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The plugin's name in it (over a scenario's `plugin`).
        #[arg(long)]
        plugin: Option<String>,
        /// Writes what the plugin did as each scenario's expectations.
        #[arg(long, conflicts_with = "replay")]
        record: bool,
        /// Replays a unit's recording (`larmd run --record`) instead.
        #[arg(long, value_name = "RECORDING")]
        replay: Option<PathBuf>,
    },
    /// Prints the world a component targets, its WIT version, imports and exports.
    Inspect {
        /// The component file.
        file: PathBuf,
    },
    /// Precompiles a component for a board: what a runtime-only larmd
    /// runs, made with the larmd version the board runs.
    #[cfg(feature = "compiler")]
    Compile {
        /// The board: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu
        /// or armv7-unknown-linux-gnueabihf (default: this machine's).
        #[arg(long)]
        target: Option<larm_host::plugins::precompiled::Target>,
        /// The board's config: the code is made for its `[runtime]` memory
        /// settings (default: the defaults); nothing else of it is read.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The file to write (default: NAME.TARGET.cwasm in this folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A built-in plugin (`std-sms-commands`, ...) instead of a file.
        #[arg(long, conflicts_with = "file")]
        builtin: Option<String>,
        /// The component.
        #[arg(required_unless_present = "builtin")]
        file: Option<PathBuf>,
    },
    /// Makes a signing key pair: PREFIX.key (secret) and PREFIX.pub.
    Keygen {
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs a component for the plugin NAME.
    Sign {
        /// The secret key (`larmd plugin keygen`, or minisign's).
        #[arg(long)]
        key: PathBuf,
        /// The plugin it is for: it cannot be installed as another.
        #[arg(long)]
        name: String,
        /// The signed component to write.
        #[arg(long)]
        out: PathBuf,
        /// The component.
        file: PathBuf,
    },
    /// Checks a signed component against a public key, offline.
    Verify {
        /// The public key.
        #[arg(long)]
        key: PathBuf,
        /// The signed component.
        signed: PathBuf,
    },
    /// Installs a signed component into a running unit, on probation.
    Install {
        /// The plugin to replace.
        name: String,
        /// The signed component.
        signed: PathBuf,
        #[command(flatten)]
        unit: UnitApi,
    },
    /// Lists a running unit's plugins and what they run.
    List {
        #[command(flatten)]
        unit: UnitApi,
    },
    /// Rolls a plugin of a running unit back to the component before.
    Rollback {
        /// The plugin.
        name: String,
        #[command(flatten)]
        unit: UnitApi,
    },
}

/// A running unit's HTTP API.
#[derive(clap::Args)]
struct UnitApi {
    /// Its address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Its `[http] token`.
    #[arg(long, env = "LARM_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl UnitApi {
    fn unit(&self) -> cli::plugin::Unit<'_> {
        cli::plugin::Unit {
            url: &self.url,
            token: self.token.as_deref(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::log::init(cli.log_format);
    let result = match cli.command {
        Command::Run {
            config,
            allow_unsigned,
            http,
            record,
            watch,
        } => block_on(run_unit(
            config.as_deref(),
            allow_unsigned,
            http,
            record.as_deref(),
            watch,
        )),
        Command::Dev {
            config,
            http,
            record,
        } => block_on(run_unit(
            Some(&config),
            false,
            http,
            record.as_deref(),
            true,
        )),
        Command::Wit { out } => cli::new::write_wit(&out),
        Command::Check {
            config,
            allow_unsigned,
        } => check(&config, allow_unsigned),
        Command::Plugin { command } => plugin(command),
        Command::Modem {
            command: ModemCommand::Probe { port, baud },
        } => block_on(cli::modem::probe(&port, baud)),
        Command::Sim {
            command: SimCommand::Modem { profile },
        } => block_on(cli::modem::simulate(&profile)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("larmd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New { name, world, lang } => cli::new::new(&name, world, lang),
        PluginCommand::Test {
            paths,
            builtin,
            config,
            plugin,
            record,
            replay,
        } => {
            let (component, scenarios) = match &builtin {
                Some(name) => (larm_host::testkit::Component::Builtin(name), &paths[..]),
                None => (larm_host::testkit::Component::File(&paths[0]), &paths[1..]),
            };
            cli::test::run(&cli::test::Request {
                component,
                scenarios,
                replay: replay.as_deref(),
                config: config.as_deref(),
                plugin: plugin.as_deref(),
                record,
            })
        }
        PluginCommand::Inspect { file } => inspect(&file),
        #[cfg(feature = "compiler")]
        PluginCommand::Compile {
            target,
            config,
            out,
            builtin,
            file,
        } => {
            let source = match (&builtin, &file) {
                (Some(name), _) => cli::plugin::Source::Builtin(name),
                (None, Some(file)) => cli::plugin::Source::File(file),
                (None, None) => anyhow::bail!("name a component file or --builtin"),
            };
            cli::plugin::compile(source, target, config.as_deref(), out.as_deref())
        }
        PluginCommand::Keygen { out } => cli::plugin::keygen(&out),
        PluginCommand::Sign {
            key,
            name,
            out,
            file,
        } => cli::plugin::sign(&key, &name, &out, &file),
        PluginCommand::Verify { key, signed } => cli::plugin::verify(&key, &signed),
        PluginCommand::Install { name, signed, unit } => {
            block_on(async { unit.unit().install(&name, &signed).await })
        }
        PluginCommand::List { unit } => block_on(async { unit.unit().list().await }),
        PluginCommand::Rollback { name, unit } => {
            block_on(async { unit.unit().rollback(&name).await })
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path, &builtin_names())?)
}

/// Unsigned components on a real board must be asked for twice: in the
/// config and on the command line (an installer who copied a bench
/// config gets an error, not a unit that runs anything).
fn refuse_unsigned_on_a_board(config: &Config, told_twice: bool) -> anyhow::Result<()> {
    if config.updates.allow_unsigned && config.board.kind() == BoardKind::Linux {
        if !told_twice {
            anyhow::bail!(
                "[updates] allow_unsigned = true on a real board (kind = \"linux\"): components nobody signed \
                 could be installed on this unit. Remove it; on a bench board, pass --allow-unsigned as well"
            );
        }
        tracing::warn!("unsigned components allowed on a real board (--allow-unsigned)");
    }
    Ok(())
}

fn check(path: &Path, allow_unsigned: bool) -> anyhow::Result<()> {
    let config = load_config(path)?;
    refuse_unsigned_on_a_board(&config, allow_unsigned)?;
    let (layout, memory_cap) = config.runtime.memory_layout();
    let runtime =
        Runtime::with_memory(None, layout, memory_cap).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // Each plugin starts (its `init` reads its config) on a simulated unit
    // with this config's board, in memory: a config the plugin refuses is
    // found here, not by a quarantine at the unit.
    let (shared, _actions) = Shared::in_memory(Arc::new(larm_host::unit::sim_board(
        &config.board,
        &config.board.closed_at_start,
    )))?;
    let unit = plugins::PluginManager::new(runtime.clone(), shared);
    let mut refused = 0;
    for plugin in &config.plugins {
        let name = plugin.name.get_ref();
        let loaded = plugins::load(&runtime, plugin, &config.updates)?;
        let kind = loaded.kind();
        match unit.try_start(plugin, loaded, &config) {
            Ok(()) => println!("plugin `{name}`: {kind} component, starts, ok"),
            Err(why) => {
                println!("plugin `{name}`: {kind} component, does not start: {why}");
                refused += 1;
            }
        }
    }
    if refused > 0 {
        anyhow::bail!("{}: {refused} plugin(s) would not start", path.display());
    }
    println!("{}: ok", path.display());
    Ok(())
}

fn inspect(file: &Path) -> anyhow::Result<()> {
    let runtime = Runtime::new(None).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let bytes = larm_host::state::read_bounded(file, larm_host::state::MAX_COMPONENT_BYTES)
        .with_context(|| format!("reading {}", file.display()))?;
    // Machine code is loaded only from trusted places; a file being
    // inspected is not one.
    if let Some(plugin) = plugins::precompiled::parse(&bytes)? {
        println!(
            "a plugin precompiled for {} ({} KiB of code): inspect the component it was made from",
            plugin.target,
            plugin.code.len().div_ceil(1024)
        );
        return Ok(());
    }
    let (component, _) = runtime.compile(&bytes)?;
    let ty = component.component_type();
    let engine = runtime.engine();
    match compat::check(engine, &component) {
        Ok(kind) => {
            let export = ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .find(|name| name.starts_with(&format!("{}/{}@", compat::PACKAGE, kind.export())))
                .unwrap_or_default();
            let version = export.rsplit('@').next().unwrap_or("?");
            println!("world:    {}/{}", compat::PACKAGE, kind.world());
            println!(
                "version:  {version} (this host: {})",
                compat::host_version()
            );
        }
        Err(e) => println!("world:    none usable here: {e}"),
    }
    println!("exports:");
    for (name, _) in ty.exports(engine) {
        println!("  {name}");
    }
    println!("imports:");
    for (name, _) in ty.imports(engine) {
        println!("  {name}");
    }
    Ok(())
}

/// The standard unit on the simulated board and modem.
const DEFAULT_CONFIG: &str = include_str!("../../examples/sim.toml");

/// Runs `task` on a tokio runtime.
fn block_on(task: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let result = runtime.block_on(task);
    // A console's read of stdin sits in a blocking thread that only ends
    // with input; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn run_unit(
    path: Option<&Path>,
    allow_unsigned: bool,
    http: Option<std::net::SocketAddr>,
    record: Option<&Path>,
    watch: bool,
) -> anyhow::Result<()> {
    // After a `RESTART ALL`, building the unit again counts as alive.
    larm_host::unit::watchdog::alive();
    let (mut config, corrupt) = match path {
        Some(path) => Config::load_or_last_good(path, &builtin_names())?,
        None => (
            Config::parse(
                DEFAULT_CONFIG,
                Path::new("examples/sim.toml (built in)"),
                &builtin_names(),
            )?,
            None,
        ),
    };
    if let Some(error) = &corrupt {
        tracing::error!("{error}");
        tracing::error!("the config is corrupt: running the last good one until it is fixed");
    }
    refuse_unsigned_on_a_board(&config, allow_unsigned)?;
    if let Some(listen) = http {
        let http = larm_host::config::HttpConfig {
            listen: toml::Spanned::new(0..0, listen),
            token: config
                .http
                .as_ref()
                .and_then(|h| h.token().map(String::from)),
        };
        if http.open_to_others() {
            anyhow::bail!(
                "--http {listen} is reachable from other hosts: set `[http] token` in the config first"
            );
        }
        config.http = Some(http);
    }
    let recorder = record
        .map(larm_host::testkit::record::Recorder::open)
        .transpose()?
        .map(Arc::new);
    let unit = Unit::build_recording(&config, corrupt.is_some(), recorder).await?;
    if watch {
        cli::dev::watch(
            &config,
            unit.plugins.targets(&config),
            unit.plugins.runtime(),
        )?;
    }
    if let Some(sim) = unit.sim.clone() {
        tokio::spawn(cli::console::sim_console(
            sim,
            unit.sim_modem.clone(),
            unit.shared.clone(),
            unit.led_state(),
        ));
    }
    if let Some(modem) = &unit.sim_modem {
        tokio::spawn(cli::console::print_modem(modem.events()));
    }
    tokio::spawn(cli::console::print_leds(unit.led_state()));
    if let Some(http) = &config.http {
        let api = larm_host::http::Api {
            shared: unit.shared.clone(),
            leds: unit.led_state(),
            sim: unit.sim.clone(),
            sim_modem: unit.sim_modem.clone(),
            token: http.token().map(String::from),
            updates: unit.updates.clone(),
            unsigned_allowed: config.updates.allow_unsigned,
            server_configured: config.server.is_some(),
        };
        let listen = *http.listen.get_ref();
        // Bound here, so a taken port stops larmd at start with a clear error.
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("HTTP API on {listen}"))?;
        tokio::spawn(async move {
            if let Err(e) = larm_host::http::serve(listener, api).await {
                tracing::error!("HTTP API on {listen}: {e}");
            }
        });
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // It started: a config worth falling back on.
    if let (Some(path), None) = (path, &corrupt) {
        config.keep_as_last_good(path);
    }
    tracing::info!("larmd running; Ctrl-C stops it");
    larm_host::unit::watchdog::ready();
    let ending = unit
        .run(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await;
    if ending == Ending::Restart {
        // `RESTART ALL`: start afresh, as the same program with the same arguments.
        use std::os::unix::process::CommandExt;
        tracing::warn!("restarting larmd");
        larm_host::unit::watchdog::alive();
        let exe = std::env::current_exe().context("finding larmd's own path")?;
        let error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec();
        return Err(error).context("restarting larmd");
    }
    Ok(())
}
