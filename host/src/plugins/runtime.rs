//! The one wasmtime engine, its linker and epoch clock, and loading
//! components (through the precompiled cache and the compatibility
//! check), or plugins precompiled for this board.
//!
//! Without the `compiler` feature (the runtime-only build), larmd has no
//! Cranelift: it runs precompiled plugins only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{input_rule, server_adapter, sms_commands};
use super::caps::{self, HostState};
use super::compat::{self, CompatError, PluginKind};
use super::epoch::EpochClock;
use super::precompiled::{self, Precompiled, PrecompiledError, Target};
#[cfg(feature = "compiler")]
use {
    crate::state::{hex, write_atomically},
    sha2::{Digest, Sha256},
    tracing::{debug, warn},
};

/// Why a component cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The component file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("not a valid WebAssembly component: {0:#}")]
    Invalid(wasmtime::Error),
    /// It targets no world of ours, or an incompatible version.
    #[error(transparent)]
    Incompatible(#[from] CompatError),
    /// It imports something the host does not provide, or its exports do
    /// not have the types of its world.
    #[error("the component does not link against this host: {0:#}")]
    Link(wasmtime::Error),
    /// This larmd was built without the compiler and the file is a
    /// component, not a plugin precompiled for this board.
    #[error(
        "this larmd is runtime-only (built without the compiler) and runs precompiled plugins only: \
         precompile it on a build machine with `larmd plugin compile --target {host} FILE.wasm` \
         (`--builtin NAME` for a built-in plugin) and name the file it writes in the plugin's `file`"
    )]
    NoCompiler {
        /// This board's target.
        host: &'static str,
    },
    /// A precompiled plugin's file is damaged or malformed.
    #[error(transparent)]
    Precompiled(#[from] PrecompiledError),
    /// A plugin precompiled for another board.
    #[error("the plugin was precompiled for {found}, but this larmd runs on {host}")]
    WrongTarget {
        /// The board it was compiled for.
        found: Target,
        /// This board.
        host: &'static str,
    },
    /// A plugin precompiled by another larmd version or for other engine
    /// settings (memory layout) than this unit's.
    #[error(
        "the plugin was precompiled for other engine settings than this unit's ({0:#}): \
         precompile it again with this larmd version, and `--config` naming this unit's config"
    )]
    Mismatch(wasmtime::Error),
    /// `larmd plugin compile` was given a precompiled plugin.
    #[error("the file is precompiled already: compile the component it was made from")]
    AlreadyPrecompiled,
    /// A replacement targets a different world than the plugin it replaces.
    #[error("a {found} component cannot replace a {expected} plugin")]
    WrongKind {
        /// The running plugin's kind.
        expected: PluginKind,
        /// The new component's kind.
        found: PluginKind,
    },
}

/// A component checked and linked, ready to instantiate.
#[derive(Clone)]
pub enum Loaded {
    /// An `input-rule` plugin.
    InputRule(input_rule::InputRulePre<HostState>),
    /// An `sms-commands` plugin.
    SmsCommands(sms_commands::SmsCommandsPre<HostState>),
    /// A `server-adapter` plugin.
    ServerAdapter(server_adapter::ServerAdapterPre<HostState>),
}

impl Loaded {
    /// The larm interfaces it imports.
    pub fn larm_imports(&self) -> Vec<String> {
        let (engine, component) = match self {
            Self::InputRule(pre) => (pre.engine(), pre.instance_pre().component()),
            Self::SmsCommands(pre) => (pre.engine(), pre.instance_pre().component()),
            Self::ServerAdapter(pre) => (pre.engine(), pre.instance_pre().component()),
        };
        compat::larm_imports(engine, component)
    }

    /// The world it targets.
    pub fn kind(&self) -> PluginKind {
        match self {
            Self::InputRule(_) => PluginKind::InputRule,
            Self::SmsCommands(_) => PluginKind::SmsCommands,
            Self::ServerAdapter(_) => PluginKind::ServerAdapter,
        }
    }
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Compiled now (and stored, if there is a cache).
    Compiled,
    /// Loaded precompiled from the cache.
    Cached,
    /// A plugin precompiled for this board (`larmd plugin compile`).
    Precompiled,
}

/// How the engine lays out each plugin's linear memory in the address
/// space. wasmtime's defaults suit 64-bit hosts (4 GiB reserved and 32 MiB
/// of guard per memory, so bounds checks cost nothing); on a 32-bit board
/// the address space is 3 GiB in all, so less is reserved and checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryLayout {
    /// Bytes reserved per memory; None: wasmtime's default, except on
    /// 32-bit hosts: the plugins' default memory, so such a memory never
    /// moves.
    pub reservation: Option<u64>,
    /// Bytes of guard after each memory; None: wasmtime's default (32 MiB
    /// on 64-bit hosts, none on Pulley).
    pub guard: Option<u64>,
}

/// The engine's settings for plugins that run on `target` (None: this
/// host, with its own CPU's features) with memories laid out as `layout`
/// says. The unit's engine and `larmd plugin compile` both take theirs
/// from here, so code compiled for a unit's settings loads there.
fn engine_config(
    target: Option<Target>,
    layout: MemoryLayout,
    memory_cap: u64,
) -> wasmtime::Result<Config> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let is_32_bit = target.map_or(usize::BITS == 32, Target::is_32_bit);
    #[cfg(feature = "compiler")]
    if let Some(target) = target {
        config.target(target.engine_target())?;
    }
    #[cfg(not(feature = "compiler"))]
    let _ = target;
    if let Some(bytes) = layout.reservation.or(is_32_bit.then_some(memory_cap)) {
        config.memory_reservation(bytes);
    }
    if let Some(bytes) = layout.guard {
        config.memory_guard_size(bytes);
    }
    Ok(config)
}

/// The plugin runtime: one engine for every plugin.
pub struct Runtime {
    engine: Engine,
    // The compiler's: for code made here, and its cache.
    #[cfg_attr(not(feature = "compiler"), expect(dead_code))]
    layout: MemoryLayout,
    #[cfg_attr(not(feature = "compiler"), expect(dead_code))]
    memory_cap: u64,
    #[cfg_attr(not(feature = "compiler"), expect(dead_code))]
    cache_dir: Option<PathBuf>,
    linker: Linker<HostState>,
    clock: Arc<EpochClock>,
}

impl Runtime {
    /// A runtime whose compiled components are cached in `cache_dir`, with
    /// the default memory layout.
    pub fn new(cache_dir: Option<PathBuf>) -> wasmtime::Result<Arc<Self>> {
        Self::with_memory(cache_dir, MemoryLayout::default(), 16 << 20)
    }

    /// A runtime with memories laid out as `layout` says; `memory_cap` is
    /// the largest memory a plugin may have (what a 32-bit host reserves).
    pub fn with_memory(
        cache_dir: Option<PathBuf>,
        layout: MemoryLayout,
        memory_cap: u64,
    ) -> wasmtime::Result<Arc<Self>> {
        let engine = Engine::new(&engine_config(None, layout, memory_cap)?)?;
        let mut linker = Linker::new(&engine);
        caps::add_to_linker(&mut linker)?;
        let clock = EpochClock::start(&engine);
        Ok(Arc::new(Self {
            engine,
            layout,
            memory_cap,
            linker,
            cache_dir,
            clock,
        }))
    }

    /// The epoch clock that bounds the CPU time of calls on this engine.
    pub fn clock(&self) -> Arc<EpochClock> {
        self.clock.clone()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component file.
    pub fn load_file(&self, path: &Path) -> Result<(Loaded, CacheOutcome), LoadError> {
        let bytes = crate::state::read_bounded(path, crate::state::MAX_COMPONENT_BYTES).map_err(
            |source| LoadError::Read {
                path: path.to_path_buf(),
                source,
            },
        )?;
        self.load(&bytes)
    }

    /// Compiles (or loads from the cache), checks and links a component.
    pub fn load(&self, bytes: &[u8]) -> Result<(Loaded, CacheOutcome), LoadError> {
        let (component, outcome) = self.compile(bytes)?;
        let kind = compat::check(&self.engine, &component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(LoadError::Link)?;
        let loaded = match kind {
            PluginKind::InputRule => {
                Loaded::InputRule(input_rule::InputRulePre::new(pre).map_err(LoadError::Link)?)
            }
            PluginKind::SmsCommands => Loaded::SmsCommands(
                sms_commands::SmsCommandsPre::new(pre).map_err(LoadError::Link)?,
            ),
            PluginKind::ServerAdapter => Loaded::ServerAdapter(
                server_adapter::ServerAdapterPre::new(pre).map_err(LoadError::Link)?,
            ),
        };
        Ok((loaded, outcome))
    }

    /// Compiles a component, or loads it precompiled from the cache, or
    /// loads a plugin precompiled for this board. The cache key is the
    /// component's hash plus the engine's compatibility hash (wasmtime
    /// version and settings), so a new `larmd` recompiles.
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, CacheOutcome), LoadError> {
        if let Some(plugin) = precompiled::parse(bytes)? {
            return Ok((self.deserialize(plugin)?, CacheOutcome::Precompiled));
        }
        self.compile_component(bytes)
    }

    /// The component of a plugin precompiled for this board, checked
    /// against this engine's settings.
    fn deserialize(&self, plugin: Precompiled) -> Result<Component, LoadError> {
        let host = Target::host_name();
        if Target::host() != Some(plugin.target) {
            return Err(LoadError::WrongTarget {
                found: plugin.target,
                host,
            });
        }
        if Engine::detect_precompiled(plugin.code) != Some(wasmtime::Precompiled::Component) {
            return Err(PrecompiledError::Damaged.into());
        }
        // SAFETY: the code comes from a file the unit trusts (see
        // `precompiled`), checked whole against its checksum; wasmtime
        // checks its header against this engine's version and settings.
        unsafe { Component::deserialize(&self.engine, plugin.code) }.map_err(LoadError::Mismatch)
    }

    #[cfg(not(feature = "compiler"))]
    fn compile_component(&self, _: &[u8]) -> Result<(Component, CacheOutcome), LoadError> {
        Err(LoadError::NoCompiler {
            host: Target::host_name(),
        })
    }
}

/// Gives the memory a compile freed back to the system: glibc keeps freed
/// memory in each thread's arena, and compiling the plugins at a cold start
/// frees more than the unit then holds in all.
#[cfg(feature = "compiler")]
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Compiling: the build with Cranelift only.
#[cfg(feature = "compiler")]
impl Runtime {
    /// Precompiles a component for plugins on `target` under this
    /// runtime's memory settings: the file `larmd plugin compile` writes.
    /// The component is loaded here first, so what is made is a plugin
    /// this larmd serves (its world, version and imports).
    pub fn precompile_for(&self, target: Target, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        if precompiled::parse(bytes)?.is_some() {
            return Err(LoadError::AlreadyPrecompiled);
        }
        self.load(bytes)?;
        let config = engine_config(Some(target), self.layout, self.memory_cap)
            .map_err(LoadError::Invalid)?;
        let engine = Engine::new(&config).map_err(LoadError::Invalid)?;
        let code = engine
            .precompile_component(bytes)
            .map_err(LoadError::Invalid)?;
        Ok(precompiled::wrap(target, &code))
    }

    fn compile_component(&self, bytes: &[u8]) -> Result<(Component, CacheOutcome), LoadError> {
        let Some(dir) = &self.cache_dir else {
            let component = Component::new(&self.engine, bytes).map_err(LoadError::Invalid)?;
            return Ok((component, CacheOutcome::Compiled));
        };
        let path = dir.join(format!("{}.cwasm", self.cache_key(bytes)));
        // Compiled code runs to a few times its component's size.
        match crate::state::read_bounded(&path, 4 * crate::state::MAX_COMPONENT_BYTES) {
            // Machine code is trusted as it is: a flash that went bad under
            // it must not crash larmd at every start, so each entry carries
            // the SHA-256 of the code after it, checked before it is used.
            Ok(entry) => match entry.split_at_checked(32) {
                Some((digest, compiled)) if *digest == *Sha256::digest(compiled) => {
                    // SAFETY: the cache dir is written only by this function,
                    // with output of `Engine::precompile_component`, checked
                    // whole just now; the key binds it to these exact bytes
                    // and this engine's configuration, and wasmtime checks
                    // the header too.
                    match unsafe { Component::deserialize(&self.engine, compiled) } {
                        Ok(component) => {
                            debug!(cache = %path.display(), "component loaded precompiled");
                            return Ok((component, CacheOutcome::Cached));
                        }
                        Err(e) => {
                            warn!(cache = %path.display(), "ignoring unusable cache entry: {e:#}")
                        }
                    }
                }
                _ => warn!(cache = %path.display(), "ignoring a damaged cache entry"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(cache = %path.display(), "cannot read the cache entry: {e}"),
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(LoadError::Invalid)?;
        let mut entry = Sha256::digest(&compiled).to_vec();
        entry.extend_from_slice(&compiled);
        if let Err(e) = write_atomically(dir, &path, &entry) {
            warn!(cache = %path.display(), "cannot cache compiled component: {e}");
        }
        // SAFETY: `compiled` was produced by this engine just now.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(LoadError::Invalid)?;
        give_back_memory();
        debug!(cache = %path.display(), "component compiled and cached");
        Ok((component, CacheOutcome::Compiled))
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut engine_hash = std::hash::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        format!(
            "{}-{:016x}",
            hex(&Sha256::digest(bytes)),
            engine_hash.finish()
        )
    }
}
