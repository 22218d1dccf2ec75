//! `larmd plugin`: precompiling for a board, signing keys and signatures
//! offline, and installs, listings and rollbacks against a running unit's
//! HTTP API.

use std::path::Path;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use larm_host::state::{MAX_COMPONENT_BYTES, read_bounded};
use larm_host::updates::signature::{self, TrustedKey};

/// The most of an answer from the unit that is read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What `larmd plugin compile` compiles.
#[cfg(feature = "compiler")]
pub enum Source<'a> {
    /// A built-in plugin, by name.
    Builtin(&'a str),
    /// A component file.
    File(&'a Path),
}

/// `larmd plugin compile [--target T] [--config UNIT] [--out F] FILE|--builtin NAME`.
#[cfg(feature = "compiler")]
pub fn compile(
    source: Source,
    target: Option<larm_host::plugins::precompiled::Target>,
    unit: Option<&Path>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    use larm_host::plugins::precompiled::Target;
    use larm_host::plugins::runtime::Runtime;

    let target = target
        .or(Target::host())
        .context("this machine is no board target: name one with --target")?;
    let (name, bytes) = match source {
        Source::Builtin(name) => (
            name.to_string(),
            larm_host::plugins::builtin(name)
                .with_context(|| {
                    format!(
                        "no built-in plugin `{}`: one of {}",
                        name.escape_debug(),
                        larm_host::plugins::builtin_names().join(", ")
                    )
                })?
                .to_vec(),
        ),
        Source::File(file) => (
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            read_bounded(file, MAX_COMPONENT_BYTES)
                .with_context(|| format!("reading {}", file.display()))?,
        ),
    };
    let (layout, memory_cap) = match unit {
        Some(config) => larm_host::config::RuntimeConfig::of_file(config)?,
        None => larm_host::config::RuntimeConfig::default(),
    }
    .memory_layout();
    let runtime =
        Runtime::with_memory(None, layout, memory_cap).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let file = runtime.precompile_for(target, &bytes)?;
    if file.len() as u64 > MAX_COMPONENT_BYTES {
        bail!(
            "`{name}` precompiled for {target} is {} KiB: more than a unit loads ({} KiB)",
            file.len().div_ceil(1024),
            MAX_COMPONENT_BYTES / 1024
        );
    }
    let out = out.map_or_else(
        || std::path::PathBuf::from(format!("{name}.{target}.cwasm")),
        Path::to_path_buf,
    );
    larm_host::state::write_atomically(
        out.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
        &out,
        &file,
    )
    .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: `{name}` precompiled for {target} ({} KiB), for larmd {}; units that trust keys need it signed (`larmd plugin sign`)",
        out.display(),
        file.len().div_ceil(1024),
        env!("CARGO_PKG_VERSION"),
    );
    Ok(())
}

/// `larmd plugin keygen --out PREFIX`.
pub fn keygen(prefix: &Path) -> anyhow::Result<()> {
    let id = signature::keygen(prefix)?;
    println!(
        "key {id}: secret {0}.key (keep it off the units), public {0}.pub (for [updates] trusted_keys)",
        prefix.display()
    );
    Ok(())
}

/// `larmd plugin sign --key KEY --name NAME --out SIGNED FILE`.
pub fn sign(key: &Path, name: &str, out: &Path, file: &Path) -> anyhow::Result<()> {
    let secret = signature::read_secret_key(key)?;
    let component = read_bounded(file, MAX_COMPONENT_BYTES)
        .with_context(|| format!("reading {}", file.display()))?;
    // Not compiled here: the units it is for may run another larmd.
    let signed = signature::sign(&component, name, &secret)?;
    larm_host::state::write_atomically(
        out.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
        out,
        &signed,
    )
    .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: signed for plugin `{name}`, sha256 {}",
        out.display(),
        signature::component_sha256(&signed)?
    );
    Ok(())
}

/// `larmd plugin verify --key PUB SIGNED`.
pub fn verify(key: &Path, signed: &Path) -> anyhow::Result<()> {
    let key = TrustedKey::read(key)?;
    let bytes = read_bounded(signed, MAX_COMPONENT_BYTES)
        .with_context(|| format!("reading {}", signed.display()))?;
    let verified = signature::verify(&bytes, std::slice::from_ref(&key), None)
        .with_context(|| format!("{}", signed.display()))?;
    println!(
        "{}: good signature by key {} for plugin `{}`, sha256 {}",
        signed.display(),
        verified.key_id,
        verified.name,
        signature::component_sha256(&bytes)?
    );
    Ok(())
}

/// Where the unit's API is, and its token.
pub struct Unit<'a> {
    /// `http://host:port`.
    pub url: &'a str,
    /// The bearer token, if the unit wants one.
    pub token: Option<&'a str>,
}

impl Unit<'_> {
    /// One request to the unit; returns the status and the JSON answer.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let uri: hyper::Uri = format!("{}{path}", self.url.trim_end_matches('/'))
            .parse()
            .with_context(|| format!("`{}` is not a URL", self.url))?;
        if uri.scheme_str() != Some("http") {
            bail!("`{}`: the unit's API is plain http://host:port", self.url);
        }
        let host = uri.host().context("the URL names no host")?.to_string();
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(uri.path())
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::CONTENT_TYPE, "application/wasm");
        if let Some(token) = self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = sender
            .send_request(request.body(Full::new(bytes::Bytes::from(body)))?)
            .await
            .context("sending the request")?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or_else(
            |_| serde_json::json!({ "error": String::from_utf8_lossy(&body).into_owned() }),
        );
        Ok((status, json))
    }

    /// Fails with the unit's `error` unless the status is a success.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, json) = self.request(method, path, body).await?;
        if !(200..300).contains(&status) {
            let why = json["error"].as_str().unwrap_or("no reason given");
            bail!("the unit refused ({status}): {why}");
        }
        Ok(json)
    }

    /// `larmd plugin install NAME SIGNED`.
    pub async fn install(&self, name: &str, file: &Path) -> anyhow::Result<()> {
        let bytes = read_bounded(file, MAX_COMPONENT_BYTES)
            .with_context(|| format!("reading {}", file.display()))?;
        let answer = self
            .call("PUT", &format!("/api/v1/plugins/{name}"), bytes)
            .await?;
        if answer["already"] == true {
            println!("`{name}` runs this component already");
        } else {
            println!(
                "`{name}`: installed {}, on probation for {} s",
                answer["sha256"].as_str().unwrap_or("?"),
                answer["probation_s"]
            );
        }
        Ok(())
    }

    /// `larmd plugin list`.
    pub async fn list(&self) -> anyhow::Result<()> {
        let answer = self.call("GET", "/api/v1/plugins", Vec::new()).await?;
        for plugin in answer.as_array().into_iter().flatten() {
            let runs = match plugin["version"].as_str() {
                Some(version) => format!(
                    "field component {version}, signed by {}",
                    plugin["current"]["key_id"].as_str().unwrap_or("nobody")
                ),
                None => "its config's component".to_string(),
            };
            let probation = plugin["probation_left_s"]
                .as_u64()
                .map(|s| format!(", on probation for {s} s more"))
                .unwrap_or_default();
            let previous = match plugin["previous"]["sha256"].as_str() {
                Some(sha) => format!(", rollback to {}", sha.chars().take(12).collect::<String>()),
                None if plugin["source"] == "field" => ", rollback to its config's".to_string(),
                None => String::new(),
            };
            println!(
                "{} ({}): {}, {runs}{probation}{previous}",
                plugin["name"].as_str().unwrap_or("?"),
                plugin["world"].as_str().unwrap_or("?"),
                plugin["state"].as_str().unwrap_or("?"),
            );
        }
        Ok(())
    }

    /// `larmd plugin rollback NAME`.
    pub async fn rollback(&self, name: &str) -> anyhow::Result<()> {
        self.call(
            "POST",
            &format!("/api/v1/plugins/{name}/rollback"),
            Vec::new(),
        )
        .await?;
        println!("`{name}`: rolled back");
        Ok(())
    }
}
