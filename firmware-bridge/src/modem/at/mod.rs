//! The AT command engine, over any `AsyncRead + AsyncWrite` (a serial port,
//! a pseudo-terminal, a duplex pipe in tests).
//!
//! One command is in flight at a time, each with its own timeout. Final
//! result codes become typed results; unsolicited result codes are routed to
//! the URC channel even when they arrive in the middle of a response. Written
//! here because the one AT crate (`atat`) is built for no_std and mixes up
//! URCs and responses (FactbirdHQ/atat#223), our main risk.

pub mod parse;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, trace, warn};

use parse::{Class, Framer, Token, classify};
pub use parse::{Final, Urc};

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    /// No final result code within the timeout.
    #[error("no answer to {0} in time")]
    Timeout(String),
    /// `ERROR`.
    #[error("{0}: ERROR")]
    Error(String),
    /// `+CME ERROR`.
    #[error("{0}: equipment error {1}")]
    Cme(String, String),
    /// `+CMS ERROR`.
    #[error("{0}: SMS error {1}")]
    Cms(String, String),
    /// A call ended (`NO CARRIER`, `BUSY`...).
    #[error("{0}: {1}")]
    CallEnded(String, String),
    /// The port failed or closed.
    #[error("the modem port is closed: {0}")]
    Closed(String),
}

struct Request {
    command: String,
    /// Sent after the `> ` prompt, then Ctrl-Z.
    payload: Option<String>,
    timeout: Duration,
    reply: oneshot::Sender<Result<Vec<String>, AtError>>,
}

/// A handle for sending commands. Cheap to clone.
#[derive(Clone)]
pub struct AtClient {
    requests: mpsc::Sender<Request>,
}

/// Ctrl-Z ends the PDU after the prompt.
const CTRL_Z: u8 = 0x1a;
/// Esc cancels a prompt we cannot fill.
const ESC: u8 = 0x1b;

impl AtClient {
    /// A client whose engine is gone: every command fails with `Closed`.
    /// Replacing a client with it closes the port once nothing else uses it.
    pub fn disconnected() -> AtClient {
        AtClient {
            requests: mpsc::channel(1).0,
        }
    }

    /// Sends `command` and returns its response lines (echo and final code
    /// removed).
    pub async fn command(&self, command: &str, timeout: Duration) -> Result<Vec<String>, AtError> {
        self.send(command, None, timeout).await
    }

    /// Sends `command`, waits for the `> ` prompt, sends `payload` and
    /// Ctrl-Z (`AT+CMGS`).
    pub async fn command_with_payload(
        &self,
        command: &str,
        payload: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, AtError> {
        self.send(command, Some(payload.to_string()), timeout).await
    }

    async fn send(
        &self,
        command: &str,
        payload: Option<String>,
        timeout: Duration,
    ) -> Result<Vec<String>, AtError> {
        let closed = || AtError::Closed("the AT engine stopped".into());
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                command: command.to_string(),
                payload,
                timeout,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

struct InFlight {
    command: String,
    payload: Option<String>,
    lines: Vec<String>,
    deadline: tokio::time::Instant,
    reply: oneshot::Sender<Result<Vec<String>, AtError>>,
}

/// Starts the engine on `port`. URCs go to the returned receiver. The
/// engine stops when every [`AtClient`] is dropped or the port fails.
pub fn spawn<P>(port: P) -> (AtClient, mpsc::UnboundedReceiver<Urc>)
where
    P: AsyncRead + AsyncWrite + Send + 'static,
{
    let (requests, rx) = mpsc::channel(16);
    let (urc_tx, urcs) = mpsc::unbounded_channel();
    tokio::spawn(run(port, rx, urc_tx));
    (AtClient { requests }, urcs)
}

async fn run<P: AsyncRead + AsyncWrite>(
    port: P,
    mut requests: mpsc::Receiver<Request>,
    urcs: mpsc::UnboundedSender<Urc>,
) {
    let (mut reader, mut writer) = tokio::io::split(port);
    let mut framer = Framer::default();
    let mut buf = [0u8; 512];
    let mut current: Option<InFlight> = None;
    // `+CMT:` is followed by its PDU on the next line.
    let mut cmt_pdu_next = false;
    loop {
        let deadline = current.as_ref().map(|c| c.deadline);
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => {
                        fail_current(&mut current, "end of file");
                        return;
                    }
                    Ok(n) => n,
                    Err(e) => {
                        fail_current(&mut current, &e.to_string());
                        return;
                    }
                };
                trace!(bytes = ?String::from_utf8_lossy(&buf[..n]), "modem sent");
                for token in framer.push(&buf[..n]) {
                    let line = match token {
                        Token::Prompt => {
                            send_payload(&mut writer, &mut current).await;
                            continue;
                        }
                        Token::Line(line) => line,
                    };
                    if cmt_pdu_next {
                        cmt_pdu_next = false;
                        let _ = urcs.send(Urc::Message(line));
                        continue;
                    }
                    if line == ">" && current.as_ref().is_some_and(|c| c.payload.is_some()) {
                        send_payload(&mut writer, &mut current).await;
                        continue;
                    }
                    match classify(&line, current.as_ref().map(|c| c.command.as_str())) {
                        Class::Echo => {}
                        Class::Response => {
                            if let Some(c) = current.as_mut() {
                                c.lines.push(line);
                            }
                        }
                        Class::Final(fin) => {
                            if let Some(c) = current.take() {
                                let _ = c.reply.send(result(&c.command, fin, c.lines));
                            }
                        }
                        Class::Urc(Urc::Message(_)) => cmt_pdu_next = true,
                        Class::Urc(Urc::Other(other)) => debug!("ignoring unsolicited `{other}`"),
                        Class::Urc(urc) => {
                            let _ = urcs.send(urc);
                        }
                    }
                }
            }
            () = sleep_until(deadline) => {
                if let Some(c) = current.take() {
                    warn!("no answer to {} in time", c.command);
                    if c.payload.is_some() {
                        // Leave prompt mode so the next command is understood.
                        let _ = writer.write_all(&[ESC]).await;
                    }
                    let _ = c.reply.send(Err(AtError::Timeout(c.command)));
                }
            }
            request = requests.recv(), if current.is_none() => {
                let Some(request) = request else { return };
                debug!(command = %request.command, "to modem");
                let line = format!("{}\r", request.command);
                if let Err(e) = writer.write_all(line.as_bytes()).await {
                    let _ = request.reply.send(Err(AtError::Closed(e.to_string())));
                    return;
                }
                current = Some(InFlight {
                    command: request.command,
                    payload: request.payload,
                    lines: Vec::new(),
                    deadline: tokio::time::Instant::now() + request.timeout,
                    reply: request.reply,
                });
            }
        }
    }
}

async fn send_payload<W: AsyncWrite + Unpin>(writer: &mut W, current: &mut Option<InFlight>) {
    let Some(c) = current.as_mut() else {
        return;
    };
    match c.payload.take() {
        Some(payload) => {
            let mut bytes = payload.into_bytes();
            bytes.push(CTRL_Z);
            if let Err(e) = writer.write_all(&bytes).await
                && let Some(c) = current.take()
            {
                let _ = c.reply.send(Err(AtError::Closed(e.to_string())));
            }
        }
        // A prompt nobody asked for: cancel it.
        None => {
            let _ = writer.write_all(&[ESC]).await;
        }
    }
}

fn fail_current(current: &mut Option<InFlight>, why: &str) {
    if let Some(c) = current.take() {
        let _ = c.reply.send(Err(AtError::Closed(why.to_string())));
    }
}

fn result(command: &str, fin: Final, lines: Vec<String>) -> Result<Vec<String>, AtError> {
    let command = command.to_string();
    match fin {
        Final::Ok => Ok(lines),
        Final::Error => Err(AtError::Error(command)),
        Final::Cme(code) => Err(AtError::Cme(command, code)),
        Final::Cms(code) => Err(AtError::Cms(command, code)),
        Final::CallEnded(why) => Err(AtError::CallEnded(command, why)),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
