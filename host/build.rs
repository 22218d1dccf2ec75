//! Builds the guest components (default plugins, example plugins and the
//! runtime's test guests) for `wasm32-wasip2`, so `cargo build`/`cargo test`
//! at the root need no other step.
//!
//! Guests are built by a nested cargo with its own target dir (as wasmtime's
//! `crates/test-programs/artifacts` does) and the `guest` profile (small,
//! LTO, stripped). The results land in `$OUT_DIR/guests/<package>.wasm`;
//! `$OUT_DIR/builtins.rs` lists the crates under `plugins/`, which `larmd`
//! embeds. Example plugins are also copied to `<target>/plugins/` so the
//! example configs can name them by a stable path.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// A guest crate: its package name and whether `larmd` embeds it.
struct Guest {
    package: String,
    builtin: bool,
    example: bool,
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = target_dir(&out_dir);

    for watched in ["wit", "plugins", "examples/plugins", "host/tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    println!(
        "cargo:rustc-env=LARM_WIT_VERSION={}",
        wit_version(&root.join("wit"))
    );

    let mut guests = Vec::new();
    collect(&root.join("plugins"), true, false, &mut guests);
    collect(&root.join("examples/plugins"), false, true, &mut guests);
    collect(
        &manifest_dir.join("tests/guests"),
        false,
        false,
        &mut guests,
    );

    let guest_target = target_dir.join("guests");
    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&root)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&guest_target)
        // The outer build's flags are for the host (and clippy's wrapper is
        // for the host's crates); they must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER");
    for guest in &guests {
        cargo.args(["-p", &guest.package]);
    }
    let status = cargo
        .status()
        .expect("cannot run cargo to build the guest components");
    assert!(
        status.success(),
        "building the guest components for {TARGET} failed; is the target installed? (`rustup target add {TARGET}`)"
    );

    let built = guest_target.join(TARGET).join(PROFILE);
    let out_guests = out_dir.join("guests");
    let examples = target_dir.join("plugins");
    fs::create_dir_all(&out_guests).unwrap();
    fs::create_dir_all(&examples).unwrap();
    let compiler = env::var_os("CARGO_FEATURE_COMPILER").is_some();
    let mut builtins = String::from(
        "/// Default plugins embedded in `larmd`: (name, component bytes).\n\
         pub const BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for guest in &guests {
        let file = format!("{}.wasm", guest.package.replace('-', "_"));
        let dest = out_guests.join(format!("{}.wasm", guest.package));
        fs::copy(built.join(&file), &dest)
            .unwrap_or_else(|e| panic!("guest {} was not built: {e}", guest.package));
        if guest.builtin {
            // A runtime-only larmd cannot compile them: it keeps the names.
            let bytes = if compiler {
                format!("include_bytes!({:?})", dest.display().to_string())
            } else {
                "&[]".into()
            };
            builtins.push_str(&format!("    ({:?}, {bytes}),\n", guest.package));
        }
        if guest.example {
            fs::copy(&dest, examples.join(format!("{}.wasm", guest.package))).unwrap();
        }
    }
    builtins.push_str("];\n");
    fs::write(out_dir.join("builtins.rs"), builtins).unwrap();
    fs::write(out_dir.join("foreach_guest.rs"), foreach_guest(&guests)).unwrap();
}

/// `foreach_guest!(mac)` calls `mac!(crate_name, "package-name")` once per
/// guest, so a test crate can demand a test for each (wasmtime's
/// `crates/test-programs` does the same): a guest added without one fails
/// to compile.
fn foreach_guest(guests: &[Guest]) -> String {
    let calls: String = guests
        .iter()
        .map(|g| {
            format!(
                "        $mac!({}, {:?});\n",
                g.package.replace('-', "_"),
                g.package
            )
        })
        .collect();
    format!(
        "/// Calls `$mac!(crate_name, \"package-name\")` for every guest component.\n\
         macro_rules! foreach_guest {{\n    ($mac:ident) => {{\n{calls}    }};\n}}\n"
    )
}

/// Adds every component crate (`cdylib`) directly under `dir` (a missing
/// dir adds none).
fn collect(dir: &Path, builtin: bool, example: bool, guests: &mut Vec<Guest>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<Guest> = entries
        .filter_map(|entry| {
            let manifest = entry.ok()?.path().join("Cargo.toml");
            let text = fs::read_to_string(manifest).ok()?;
            let doc: toml::Table = text.parse().ok()?;
            // Libraries shared by plugins are not components.
            let component = doc
                .get("lib")
                .and_then(|lib| lib.get("crate-type"))
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("cdylib")));
            if !component {
                return None;
            }
            let package = doc.get("package")?.get("name")?.as_str()?.to_string();
            Some(Guest {
                package,
                builtin,
                example,
            })
        })
        .collect();
    found.sort_by(|a, b| a.package.cmp(&b.package));
    guests.extend(found);
}

/// The outer build's target dir: `OUT_DIR` is `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`.
fn target_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .expect("OUT_DIR is not inside a cargo target dir");
    let parent = profile_dir.parent().unwrap();
    if parent.join("CACHEDIR.TAG").exists() {
        parent.to_path_buf()
    } else {
        parent.parent().unwrap().to_path_buf()
    }
}

/// The version in `package larm:plugin@X;`, so the host's compatibility
/// check follows the WIT files rather than a second copy of the number.
fn wit_version(wit: &Path) -> String {
    let text = fs::read_to_string(wit.join("types.wit")).expect("wit/types.wit");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("package larm:plugin@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("wit/types.wit declares `package larm:plugin@<version>;`")
        .to_string()
}
