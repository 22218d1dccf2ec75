//! The local HTTP API against `larmd run` as a separate process.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Larmd, Plugin, UnitConfig};

/// One HTTP/1.1 request; returns (status code, body).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    common::http::request(addr, method, path, body.unwrap_or("").as_bytes(), token)
}

/// A PUT without a token.
fn put(addr: &str, path: &str, body: &str) -> (u16, String) {
    request(addr, "PUT", path, Some(body), None)
}

/// Starts larmd with the API (`http` goes into `[http]`) and the standard
/// command set; returns it with the API's address.
fn start(http: &str) -> (Larmd, String) {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .section("http", &format!("listen = \"127.0.0.1:0\"\n{http}"))
            .sim_modem("ec2x", "")
            .plugin(Plugin::sms_commands()),
    );
    let addr = common::http::address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    (larmd, addr)
}

fn status(addr: &str, token: Option<&str>) -> serde_json::Value {
    let (code, body) = request(addr, "GET", "/api/v1/status", None, token);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Asks for the status until `ready` holds (the modem's first status read
/// comes a moment after start).
fn status_when(addr: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..100 {
        let s = status(addr, None);
        if ready(&s) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the status never got there: {}", status(addr, None));
}

#[test]
fn status_outputs_and_the_simulator() {
    let (mut larmd, addr) = start("");
    let s = status_when(&addr, |s| s["modem"]["answering"] == true);
    assert_eq!(s["inputs"].as_array().unwrap().len(), 8);
    assert_eq!(s["outputs"].as_array().unwrap().len(), 5);
    assert_eq!(s["alarm_output"], 5);
    assert_eq!(s["modem"]["network"], "lte");
    assert_eq!(s["modem"]["signal_bars"], 4);
    assert_eq!(s["plugins"][0]["name"], "sms-commands");
    assert_eq!(s["plugins"][0]["state"], "running");
    assert_eq!(s["leds"].as_array().unwrap().len(), 4);

    let (code, _) = put(&addr, "/api/v1/outputs/2", r#"{"on":true}"#);
    assert_eq!(code, 204);
    larmd.wait_event(&[
        ("event", "output"),
        ("output", "2"),
        ("on", "true"),
        ("by", "http"),
    ]);
    assert_eq!(status(&addr, None)["outputs"][1]["active"], true);
    let (code, body) = put(&addr, "/api/v1/outputs/9", r#"{"on":true}"#);
    assert_eq!(code, 400);
    assert!(body.contains("output 9 does not exist"), "{body}");
    // Any bad request is a 400 with a JSON `error` saying what is wrong.
    for (path, body) in [
        ("/api/v1/outputs/2", "not json"),
        ("/api/v1/outputs/2", r#"{"on":"yes"}"#),
        ("/api/v1/outputs/2", r#"{}"#),
        ("/api/v1/outputs/999", r#"{"on":true}"#),
        ("/api/v1/outputs/two", r#"{"on":true}"#),
        ("/api/v1/sim/inputs/1", r#"{"closed":1}"#),
    ] {
        let (code, answer) = put(&addr, path, body);
        assert_eq!(code, 400, "{path} {body}: {answer}");
        let json: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|_| panic!("{path} {body}: not JSON: {answer}"));
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }

    let (code, _) = put(&addr, "/api/v1/sim/inputs/1", r#"{"closed":true}"#);
    assert_eq!(code, 204);
    larmd.wait_for("input 1 closed");
    assert_eq!(status(&addr, None)["inputs"][0]["active"], true);

    let sms = r#"{"from":"+46701234567","text":"0000 OUTPUT 3 ON"}"#;
    let (code, _) = request(&addr, "POST", "/api/v1/sim/sms", Some(sms), None);
    assert_eq!(code, 202);
    larmd.wait_for("modem: SMS sent to +46701234567: \"Output 3 ON\"");
    larmd.stop();
}

/// Wrong passwords from anyone spend the unit's budget; the lockout that
/// follows shows in the status.
#[test]
fn a_password_lockout_shows_in_the_status() {
    let (mut larmd, addr) = start("");
    assert_eq!(
        status(&addr, None)["password_lockout_s"],
        serde_json::Value::Null
    );
    for i in 0..20 {
        let sms = format!(r#"{{"from":"+4673000{i:04}","text":"9{i:03} STATUS"}}"#);
        let (code, _) = request(&addr, "POST", "/api/v1/sim/sms", Some(&sms), None);
        assert_eq!(code, 202);
    }
    larmd.wait_for("every password command is ignored");
    let left = status(&addr, None)["password_lockout_s"].as_u64();
    assert!(left.is_some_and(|s| s > 500 && s <= 600), "{left:?}");
    larmd.stop();
}

#[test]
fn a_token_is_required_when_configured() {
    let (larmd, addr) = start("token = \"s3cret\"");
    let (code, _) = request(&addr, "GET", "/api/v1/status", None, None);
    assert_eq!(code, 401);
    let (code, _) = request(&addr, "GET", "/api/v1/status", None, Some("wrong"));
    assert_eq!(code, 401);
    assert_eq!(status(&addr, Some("s3cret"))["alarm_output"], 5);
    larmd.stop();
}

#[test]
fn settings_survive_a_restart_and_facreset_restores_the_defaults() {
    let (mut larmd, addr) = start("");
    let send = |addr: &str, text: &str| {
        let body = format!(r#"{{"from":"+46701234567","text":"{text}"}}"#);
        assert_eq!(
            request(addr, "POST", "/api/v1/sim/sms", Some(&body), None).0,
            202
        );
    };
    send(&addr, "0000 CHGPASS 1234 1234");
    larmd.wait_for("\"Password changed\"");
    send(&addr, "1234 CONINTVL 60");
    larmd.wait_for("\"Connection interval: 60 min\"");
    assert_eq!(status(&addr, None)["settings"]["server.interval-min"], "60");

    let dir = larmd.stop();
    let mut larmd = Larmd::restart(dir);
    let addr = common::http::address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    assert_eq!(status(&addr, None)["settings"]["server.interval-min"], "60");

    send(&addr, "1234 FACRESET");
    larmd.wait_for("\"Factory settings restored\"");
    assert_eq!(status(&addr, None)["settings"], serde_json::json!({}));
    send(&addr, "0000 STATUS");
    larmd.wait_for("Change the factory password!");
    larmd.stop();
}

/// Whether the API closed `stream` within `within` (reads end or fail).
fn closed_within(stream: &mut TcpStream, within: std::time::Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// Idle and trickling clients cannot hold the API: connections beyond the
/// limit are closed at once, a head that does not arrive in time ends the
/// connection, and the API answers again.
#[test]
fn idle_and_trickling_connections_cannot_hold_the_api() {
    use std::time::{Duration, Instant};
    let (larmd, addr) = start("");
    let mut idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // Connected in order, so the 64 above hold every slot.
    std::thread::sleep(Duration::from_millis(500));
    let mut extra = TcpStream::connect(&addr).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)),
        "a connection over the limit is closed at once"
    );
    // A client that trickles its head, a byte a second, is cut off too.
    let mut trickle = idle.pop().unwrap();
    let started = Instant::now();
    let cut = loop {
        if trickle.write_all(b"G").is_err() || closed_within(&mut trickle, Duration::from_secs(1)) {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never cut off");
    };
    assert!(cut < Duration::from_secs(30));
    for mut stream in idle {
        assert!(closed_within(&mut stream, Duration::from_secs(30)));
    }
    assert_eq!(status(&addr, None)["outputs"].as_array().unwrap().len(), 5);
    larmd.stop();
}
