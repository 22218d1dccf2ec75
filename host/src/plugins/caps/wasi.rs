//! WASI for plugins, linked with an empty context: Rust guests import
//! `wasi:io`, `wasi:cli` and friends through std whether they use them or
//! not. They get no files, no environment, no arguments and no sockets;
//! stdout and stderr go to the log under the plugin's name, escaped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::HostState;

/// The empty WASI context of plugin `plugin`.
pub(super) fn context(plugin: Arc<str>) -> WasiCtx {
    WasiCtx::builder()
        .stdout(LogStream {
            plugin: plugin.clone(),
            stream: "stdout",
        })
        .stderr(LogStream {
            plugin,
            stream: "stderr",
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
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
                    tracing::info!(plugin = %self.plugin, stream = self.stream, "{}", text.escape_debug());
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
