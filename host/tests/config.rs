//! Config errors name the file, line, column and key, through the library
//! and through `larmd check`.

use std::path::Path;
use std::process::Command;

use larm_host::config::{BoardKind, Config, ConfigError, Location};

/// Parses `text` as `unit.toml` and returns the error's location, key and message.
fn error(text: &str) -> (Location, Option<String>, String) {
    match Config::parse(text, Path::new("unit.toml"), &["std-rules"]) {
        Err(ConfigError::Invalid {
            file,
            location,
            key,
            message,
        }) => {
            assert_eq!(file, Path::new("unit.toml"));
            (location.expect("the error has a location"), key, message)
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("accepted: {text}"),
    }
}

#[test]
fn syntax_error() {
    let (at, key, message) = error("[modem]\nport = \"/dev/ttyUSB2\"\nbaud = \n");
    assert_eq!((at.line, at.text.as_str()), (3, "baud = "));
    assert_eq!(key, None);
    assert!(message.contains("value"), "{message}");
}

#[test]
fn unknown_key() {
    let (at, key, message) = error("[board]\nkind = \"sim\"\ncolour = \"red\"\n");
    assert_eq!((at.line, at.column), (3, 1));
    assert_eq!(key.as_deref(), Some("board.colour"));
    assert!(message.contains("unknown field `colour`"), "{message}");
}

#[test]
fn unknown_key_in_a_plugin_entry() {
    let (at, key, _) = error(
        "[[plugins]]\nname = \"a\"\nbuiltin = \"std-rules\"\n[plugins.grants]\noutptus = [1]\n",
    );
    assert_eq!(at.line, 5);
    assert_eq!(key.as_deref(), Some("plugins[0].grants.outptus"));
}

#[test]
fn bad_value() {
    let (at, key, message) = error("[modem]\nport = \"/dev/ttyUSB2\"\nbaud = \"fast\"\n");
    assert_eq!((at.line, at.column), (3, 8));
    assert_eq!(key.as_deref(), Some("modem.baud"));
    assert!(message.contains("expected u32"), "{message}");

    let (at, key, message) = error("[board]\nkind = \"raspberry\"\n");
    assert_eq!(at.line, 2);
    assert_eq!(key.as_deref(), Some("board.kind"));
    assert!(message.contains("`sim` or `linux`"), "{message}");

    let (at, key, _) = error("[runtime]\ndeadline_ms = 0\n");
    assert_eq!(at.line, 2);
    assert_eq!(key.as_deref(), Some("runtime.deadline_ms"));

    let (at, key, message) = error(
        "[[plugins]]\nname = \"a\"\nbuiltin = \"std-rules\"\n[plugins.grants]\noutputs = \"all\"\n",
    );
    assert_eq!(at.line, 5);
    assert_eq!(key.as_deref(), Some("plugins[0].grants.outputs"));
    assert!(message.contains(r#""any", "none" or a list"#), "{message}");
}

#[test]
fn missing_plugin_file() {
    let (at, key, message) = error("[[plugins]]\nname = \"rule\"\nfile = \"plugins/nope.wasm\"\n");
    assert_eq!((at.line, at.column), (3, 8));
    assert_eq!(key.as_deref(), Some("plugins[0].file"));
    assert!(message.contains("plugins/nope.wasm not found"), "{message}");
}

#[test]
fn unknown_builtin_and_duplicate_names() {
    let (at, key, message) = error("[[plugins]]\nname = \"a\"\nbuiltin = \"std-rulez\"\n");
    assert_eq!(at.line, 3);
    assert_eq!(key.as_deref(), Some("plugins[0].builtin"));
    assert!(
        message.contains("std-rules"),
        "lists what is built in: {message}"
    );

    let (at, key, message) = error(
        "[[plugins]]\nname = \"a\"\nbuiltin = \"std-rules\"\n[[plugins]]\nname = \"a\"\nbuiltin = \"std-rules\"\n",
    );
    assert_eq!(at.line, 5);
    assert_eq!(key.as_deref(), Some("plugins[1].name"));
    assert!(message.contains("two plugins are named `a`"), "{message}");
}

#[test]
fn a_good_config_with_defaults() {
    let config = Config::parse(
        "[modem]\nport = \"/dev/ttyUSB2\"\n[http]\nlisten = \"127.0.0.1:8080\"\n[server]\nurl = \"mqtt://broker:1883\"\n",
        Path::new("unit.toml"),
        &[],
    )
    .unwrap();
    assert_eq!(config.board.kind(), BoardKind::Sim);
    assert_eq!(config.modem.unwrap().baud, 115_200);
    assert_eq!(config.runtime.deadline_ms.get(), 50);
    assert!(config.plugins.is_empty());
}

#[test]
fn larmd_check_reports_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unit.toml");
    std::fs::write(&file, "[board]\nkind = \"sim\"\ncolour = \"red\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:1: key `board.colour`", file.display())),
        "{stderr}"
    );
    assert!(
        !dir.path().join("larm-data").exists(),
        "check starts nothing"
    );
}

#[test]
fn larmd_check_rejects_an_incompatible_component() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unit.toml");
    let guest = Path::new(env!("OUT_DIR")).join("guests/guest-unknown-world.wasm");
    std::fs::write(
        &file,
        format!(
            "[[plugins]]\nname = \"gadget\"\nfile = {:?}\n",
            guest.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugin `gadget`: the component targets no larm world"),
        "{stderr}"
    );
}

#[test]
fn the_examples_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let examples: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert!(!examples.is_empty());
    for example in examples {
        let out = Command::new(env!("CARGO_BIN_EXE_larmd"))
            .args(["check", "--config"])
            .arg(&example)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            example.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_api_reachable_from_other_hosts_needs_a_token() {
    let (at, key, message) = error("[http]\nlisten = \"0.0.0.0:8080\"\n");
    assert_eq!(at.line, 2);
    assert_eq!(key.as_deref(), Some("http.token"));
    assert!(message.contains("needs `token`"), "{message}");
    Config::parse(
        "[http]\nlisten = \"0.0.0.0:8080\"\ntoken = \"s3cret\"\n",
        Path::new("unit.toml"),
        &[],
    )
    .unwrap();
}

/// Parses `text`; returns the key and message of the error, wherever it is.
fn refused(text: &str) -> (Option<String>, String) {
    match Config::parse(text, Path::new("unit.toml"), &["std-rules"]) {
        Err(ConfigError::Invalid { key, message, .. }) => (key, message),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("accepted: {text}"),
    }
}

/// What `larmd run` would refuse, `check` refuses too: values that parse
/// but cannot work, each named by its key, in the user's words.
#[test]
fn values_that_cannot_work_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state"), b"").unwrap();
    let data_dir_is_a_file = format!(
        "data_dir = {:?}\n",
        dir.path().join("state").display().to_string()
    );
    let plugin_file_is_a_folder = format!(
        "[[plugins]]\nname = \"a\"\nfile = {:?}\n",
        dir.path().display().to_string()
    );
    for (text, want_key, why) in [
        (
            "[modem]\nsimulator = \"ec2\"\n",
            "modem",
            "no modem simulator `ec2`",
        ),
        (
            "[[plugins]]\nname = \"a\"\nbuiltin = \"std-rules\"\n[plugins.grants]\noutputs = [0, 99]\n",
            "plugins[0].grants.outputs",
            "output 0 does not exist (the board has outputs 1 to 5)",
        ),
        (
            "[board]\nclosed_at_start = [0, 200]\n",
            "board.closed_at_start",
            "input 0 does not exist",
        ),
        (&data_dir_is_a_file, "data_dir", "is not a folder"),
        (
            &plugin_file_is_a_folder,
            "plugins[0].file",
            "is a folder, not a component file",
        ),
        (
            "[http]\nlisten = \"nowhere\"\n",
            "http.listen",
            "invalid socket address",
        ),
        (
            "[[plugins]]\nname = \"a\"\nbuiltin = \"std-rules\"\n[plugins.grants]\nsms = [\"+46 70 abc\"]\n",
            "plugins[0].grants.sms[0]",
            "'a' is not a digit",
        ),
        (
            "[server]\nurl = \"mqtt://broker:1883\"\ninterval_min = 20000\n",
            "server.interval_min",
            "the interval is 0 (never) to 10080",
        ),
    ] {
        let (key, message) = refused(text);
        assert_eq!(key.as_deref(), Some(want_key), "{text}: {message}");
        assert!(message.contains(why), "{text}: {message}");
        assert!(!message.contains("$__serde"), "{message}");
    }
}

/// A config file of untrusted size is not read whole: a device, a folder
/// or a huge file is refused by what it is.
#[test]
fn a_config_that_is_not_a_small_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, vec![b'#'; 2 << 20]).unwrap();
    for (path, why) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (dir.path(), "is a folder"),
        (huge.as_path(), "larger than"),
    ] {
        let error = Config::load(path, &[]).unwrap_err().to_string();
        assert!(error.contains(why), "{}: {error}", path.display());
    }
}

/// `[outputs.N] owners` names outputs the board has and sources that
/// exist; quotas are bounded.
#[test]
fn output_owners_and_quotas_are_checked() {
    let plugin = "[[plugins]]\nname = \"rules\"\nbuiltin = \"std-rules\"\n";
    let (at, key, message) = error(&format!("{plugin}[outputs.9]\nowners = [\"rules\"]\n"));
    assert_eq!((at.line, key.as_deref()), (5, Some("outputs.9")));
    assert!(message.contains("outputs 1 to 5"), "{message}");
    let (at, key, message) = error(&format!(
        "{plugin}[outputs.2]\nowners = [\"rules\", \"gate\"]\n"
    ));
    assert_eq!((at.line, key.as_deref()), (5, Some("outputs.2.owners")));
    assert!(message.contains("`gate` is neither a plugin"), "{message}");
    let (_, key, message) = error(&format!("{plugin}[outputs.2]\nowners = []\n"));
    assert_eq!(key.as_deref(), Some("outputs.2.owners"));
    assert!(message.contains("nobody"), "{message}");
    let (_, key, _) = error(&format!(
        "{plugin}[outputs.5]\nowners = [\"rules\"]\n[outputs.05]\nowners = [\"rules\"]\n"
    ));
    assert_eq!(
        key.as_deref(),
        Some("outputs.05"),
        "one spelling of each output"
    );
    let (_, key, message) = error(&format!("{plugin}[outputs.2]\nowners = [\"http\"]\n"));
    assert_eq!(key.as_deref(), Some("outputs.2.owners"));
    assert!(message.contains("no [http]"), "{message}");
    let (_, key, message) = error("[[plugins]]\nname = \"Password\"\nbuiltin = \"std-rules\"\n");
    assert_eq!(key.as_deref(), Some("plugins[0].name"));
    assert!(message.contains("the unit uses for itself"), "{message}");
    let (at, key, _) = error(&format!("{plugin}quota = {{ sms_per_hour = 1000000 }}\n"));
    assert_eq!(
        (at.line, key.as_deref()),
        (2, Some("plugins[0].quota.sms_per_hour"))
    );
    let ok = format!(
        "{plugin}bypass_quotas = true\n[http]\n[outputs.5]\nowners = [\"rules\", \"http\"]\n[quotas.unit]\nsms_per_day = 10\n"
    );
    let config = Config::parse(&ok, Path::new("unit.toml"), &["std-rules"]).unwrap();
    assert_eq!(config.owners[&5], ["rules", "http"]);
}
