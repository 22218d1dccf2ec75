//! The data of one plugin instance's store, and the generated capability
//! traits implemented on it by delegating to [`Capabilities`].
//!
//! WASI is linked with an empty context: Rust guests import `wasi:io`,
//! `wasi:cli` and friends through std whether they use them or not. They get
//! no files, no environment, no arguments and no sockets; stdout and stderr
//! go to the log under the plugin's name.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::Capabilities as CapabilityWorld;
use super::bindings::larm::plugin::{
    clock, io, kv, log, password, server, settings, sms, status, system, timers, types, voice,
};
use super::caps::Capabilities;

/// The data of one plugin instance's store.
pub struct HostState {
    caps: Arc<Capabilities>,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory limits of the instance.
    pub limits: StoreLimits,
}

impl HostState {
    /// State for an instance of the plugin behind `caps`, whose linear
    /// memories may grow to `memory_bytes` in all.
    pub fn new(caps: Arc<Capabilities>, memory_bytes: usize) -> Self {
        let name: Arc<str> = caps.name().into();
        let wasi = WasiCtx::builder()
            .stdout(LogStream {
                plugin: name.clone(),
                stream: "stdout",
            })
            .stderr(LogStream {
                plugin: name,
                stream: "stderr",
            })
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            caps,
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Adds WASI (empty context) and the larm capabilities to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    CapabilityWorld::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

/// A guest's stdout or stderr, logged line by line under the plugin's name.
#[derive(Clone)]
struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
}

/// A line longer than this is logged in pieces, so a guest cannot make the
/// host buffer without bound.
const MAX_LINE: usize = 1024;

impl LogStream {
    fn log(&self, bytes: &[u8]) {
        for line in bytes.split(|&b| b == b'\n') {
            for piece in line.chunks(MAX_LINE) {
                let text = String::from_utf8_lossy(piece);
                let text = text.trim_end();
                if !text.is_empty() {
                    tracing::info!(plugin = %self.plugin, stream = self.stream, "{text}");
                }
            }
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.log(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE * 4)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        self.caps.log(level, &message);
    }
}

impl clock::Host for HostState {
    fn monotonic_now(&mut self) -> u64 {
        self.caps.monotonic_now()
    }

    fn wall_now(&mut self) -> i64 {
        self.caps.wall_now()
    }
}

impl timers::Host for HostState {
    fn set(&mut self, delay_ms: u64, tag: String) -> Result<types::TimerId, types::Error> {
        self.caps.set_timer(delay_ms, tag)
    }

    fn cancel(&mut self, id: types::TimerId) -> bool {
        self.caps.cancel_timer(id)
    }
}

impl io::Host for HostState {
    fn input_count(&mut self) -> u8 {
        self.caps.input_count()
    }

    fn output_count(&mut self) -> u8 {
        self.caps.output_count()
    }

    fn alarm_output(&mut self) -> types::OutputId {
        self.caps.alarm_output()
    }

    fn read_input(&mut self, input: types::InputId) -> Result<types::Contact, types::Error> {
        self.caps.read_input(input)
    }

    fn read_output(&mut self, output: types::OutputId) -> Result<bool, types::Error> {
        self.caps.read_output(output)
    }

    fn set_output(&mut self, output: types::OutputId, on: bool) -> Result<(), types::Error> {
        self.caps.set_output(output, on)
    }

    fn pulse_output(
        &mut self,
        output: types::OutputId,
        duration_ms: u32,
    ) -> Result<(), types::Error> {
        self.caps.pulse_output(output, duration_ms)
    }
}

impl sms::Host for HostState {
    fn send(&mut self, to: String, text: String) -> Result<(), types::Error> {
        self.caps.send_sms(to, text)
    }
}

impl voice::Host for HostState {
    fn dial(&mut self, number: String, ring_s: u32) -> Result<(), types::Error> {
        self.caps.dial(number, ring_s)
    }
}

impl status::Host for HostState {
    fn device(&mut self) -> types::DeviceStatus {
        self.caps.device_status()
    }

    fn plugins(&mut self) -> Vec<types::PluginHealth> {
        self.caps.plugin_health()
    }
}

impl password::Host for HostState {
    fn verify(&mut self, sender: String, candidate: String) -> Result<bool, types::Error> {
        self.caps.verify_password(&sender, &candidate)
    }

    fn change(&mut self, new_password: String) -> Result<(), types::Error> {
        self.caps.change_password(&new_password)
    }

    fn is_factory_default(&mut self) -> Result<bool, types::Error> {
        self.caps.password_is_factory_default()
    }
}

impl settings::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, types::Error> {
        self.caps.setting(&key)
    }

    fn entries(&mut self, prefix: String) -> Result<Vec<(String, String)>, types::Error> {
        self.caps.settings(&prefix)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), types::Error> {
        self.caps.set_setting(&key, Some(&value))
    }

    fn remove(&mut self, key: String) -> Result<(), types::Error> {
        self.caps.set_setting(&key, None)
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.caps.kv_get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::Error> {
        self.caps.kv_set(&key, Some(&value))
    }

    fn delete(&mut self, key: String) -> Result<(), types::Error> {
        self.caps.kv_set(&key, None)
    }

    fn keys(&mut self) -> Vec<String> {
        self.caps.kv_keys()
    }
}

impl server::Host for HostState {
    fn send(&mut self, report: types::Report) -> Result<(), types::Error> {
        self.caps.report(report)
    }

    fn request_connection(&mut self) -> Result<(), types::Error> {
        self.caps.request_connection()
    }

    fn set_interval(&mut self, minutes: u32) -> Result<(), types::Error> {
        self.caps.set_interval(minutes)
    }
}

impl system::Host for HostState {
    fn restart(&mut self, target: system::RestartTarget) -> Result<(), types::Error> {
        self.caps.restart(target)
    }

    fn factory_reset(&mut self) -> Result<(), types::Error> {
        self.caps.factory_reset()
    }
}
