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
    for _ in 0..400 {
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

/// The standard unit with the API (`http` goes into `[http]`) and the
/// extended card: input 2 is an NC loop named Door by the rule plugin's
/// config, as on the simulator's unit.
fn start_standard(http: &str) -> (Larmd, String) {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .section("http", &format!("listen = \"127.0.0.1:0\"\n{http}"))
            .section("board", "closed_at_start = [2]")
            .section("board.extended", "inputs = 4\noutputs = 4")
            .sim_modem("ec2x", "")
            .plugin(Plugin::sms_commands())
            .plugin(
                Plugin::input_rules()
                    .config("\"input.2.mode\" = \"NC\"\n\"input.2.name\" = \"Door\"")
                    .config("\"alarm.sms\" = \"+46701234567\"\n\"alarm.call\" = \"+46701234567\""),
            ),
    );
    let addr = common::http::address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    (larmd, addr)
}

fn led<'a>(status: &'a serde_json::Value, colour: &str) -> &'a serde_json::Value {
    status["leds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["colour"] == colour)
        .unwrap()
}

#[test]
fn the_status_gives_leds_as_data_and_inputs_as_wired() {
    let (larmd, addr) = start_standard("");
    let s = status_when(&addr, |s| led(s, "blue")["mode"] == "blink");
    let blue = led(&s, "blue");
    assert_eq!(blue["count"], 4, "{blue}");
    assert_eq!(blue["code"], "signal");
    assert_eq!(blue["text"], "4 blinks (signal strength)");
    assert_eq!(
        (&blue["on_ms"], &blue["off_ms"], &blue["pause_ms"]),
        (&300.into(), &300.into(), &1500.into())
    );
    assert_eq!(led(&s, "red")["mode"], "off");
    assert_eq!(led(&s, "red")["code"], serde_json::Value::Null);
    // The config's defaults show until a setting is made.
    let door = &s["inputs"][1];
    assert_eq!(
        (&door["name"], &door["mode"]),
        (&"Door".into(), &"NC".into())
    );
    assert_eq!(door["active"], true, "the NC loop is closed");
    assert_eq!(door["alarm"], false);
    assert_eq!(s["setting_defaults"]["input.2.mode"], "NC");
    assert_eq!(
        (&s["simulated"], &s["simulated_modem"]),
        (&true.into(), &true.into())
    );

    // The simulated modem's SIM asks for a PIN: red, 2 blinks.
    let (code, body) = put(&addr, "/api/v1/sim/modem", r#"{"sim":"pin"}"#);
    assert_eq!(code, 204, "{body}");
    let s = status_when(&addr, |s| led(s, "red")["mode"] == "blink");
    let red = led(&s, "red");
    assert_eq!(
        (&red["count"], &red["code"]),
        (&2.into(), &"sim-error".into()),
        "{red}"
    );
    assert_eq!(red["groups"], serde_json::json!([2]));
    assert!(red["phase_ms"].as_u64().is_some(), "{red}");
    larmd.stop();
}

#[test]
fn the_event_stream_sends_each_change_and_resumes_from_the_last_id() {
    use common::http::EventStream;
    let (mut larmd, addr) = start_standard("");
    status_when(&addr, |s| s["modem"]["answering"] == true);
    let from = status(&addr, None)["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut events = EventStream::open(&addr, Some(&from), None).unwrap();

    assert_eq!(
        put(&addr, "/api/v1/sim/inputs/1", r#"{"closed":true}"#).0,
        204
    );
    let input = events.next_of("input");
    assert_eq!(
        (
            &input.data["input"],
            &input.data["closed"],
            &input.data["alarm"]
        ),
        (&1.into(), &true.into(), &true.into())
    );
    assert!(input.data["at_ms"].as_u64().is_some());
    // The rule's actions, in the order it took them.
    let output = events.next_of("output");
    assert_eq!(
        (
            &output.data["output"],
            &output.data["on"],
            &output.data["by"]
        ),
        (&5.into(), &true.into(), &"input-rules".into())
    );
    assert_eq!(output.data["held_by"], "input-rules");
    // Without a token, anyone on the network reads the stream: no numbers,
    // no texts.
    let sms = events.next_of("sms-out");
    assert_eq!(
        (&sms.data["to"], &sms.data["text"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    assert_eq!(sms.data["by"], "input-rules");
    assert!(events.next_of("call").data["to"].is_null());
    let alarm = events.next_of("alarm");
    assert_eq!(
        (&alarm.data["input"], &alarm.data["text"]),
        (&1.into(), &"Alarm: Input 1".into())
    );
    let last = alarm.id;
    drop(events);

    // Missed while away: sent first on coming back.
    assert_eq!(
        put(&addr, "/api/v1/sim/inputs/1", r#"{"closed":false}"#).0,
        204
    );
    larmd.wait_for("input 1 open");
    let mut events = EventStream::open(&addr, Some(&last), None).unwrap();
    let input = events.next_of("input");
    assert_eq!(
        (&input.data["input"], &input.data["closed"]),
        (&1.into(), &false.into())
    );
    drop(events);

    // An id of another run of larmd, or nonsense: start again from the status.
    for id in ["1-1", "nonsense"] {
        let mut events = EventStream::open(&addr, Some(id), None).unwrap();
        assert_eq!(events.next().kind, "reset", "{id}");
    }
    larmd.stop();
}

#[test]
fn with_a_token_the_stream_needs_it_and_carries_numbers_and_texts() {
    use common::http::EventStream;
    let (larmd, addr) = start_standard("token = \"s3cret\"");
    let (code, _) = EventStream::open(&addr, None, None).err().unwrap();
    assert_eq!(code, 401);
    let (code, _) = EventStream::open(&addr, None, Some("wrong")).err().unwrap();
    assert_eq!(code, 401);
    let mut events = EventStream::open(&addr, None, Some("s3cret")).unwrap();
    let sms = r#"{"from":"+46701234567","text":"0000 STATUS"}"#;
    let (code, _) = request(&addr, "POST", "/api/v1/sim/sms", Some(sms), Some("s3cret"));
    assert_eq!(code, 202);
    let got = events.next_of("sms-in");
    assert_eq!(
        (&got.data["from"], &got.data["text"]),
        (&"+46701234567".into(), &"0000 STATUS".into())
    );
    let reply = events.next_of("sms-out");
    assert_eq!(reply.data["to"], "+46701234567");
    assert!(
        reply.data["text"]
            .as_str()
            .unwrap()
            .contains("Change the factory password")
    );
    // The panel itself is served without the token: it holds nothing of the
    // unit's, and asks for the token.
    let (code, page) = request(&addr, "GET", "/", None, None);
    assert_eq!(code, 200);
    assert!(page.contains("<script src=\"/panel.js\""), "{page}");
    for file in ["/panel.js", "/panel.css"] {
        assert_eq!(request(&addr, "GET", file, None, None).0, 200, "{file}");
    }
    larmd.stop();
}

#[test]
fn settings_are_checked_whole_and_applied_together() {
    use common::http::EventStream;
    let (mut larmd, addr) = start_standard("");
    let mut events = EventStream::open(&addr, None, None).unwrap();
    let good = r#"{"input.1.name":"Pump","input.1.delay-s":"5","server.interval-min":"30"}"#;
    let (code, body) = put(&addr, "/api/v1/settings", good);
    assert_eq!(code, 204, "{body}");
    // The event says they changed; the status has them (and the alarm
    // numbers among them are not sent to every reader of the stream).
    assert_eq!(events.next_of("settings").data["type"], "settings");
    let s = status(&addr, None);
    assert_eq!(
        (&s["inputs"][0]["name"], &s["inputs"][0]["delay_s"]),
        (&"Pump".into(), &5.into())
    );
    larmd.wait_for("connection interval set to 30 min (by http)");
    // What each is when not set: the name's own default, the texts made
    // from the name as it is.
    let shown = &s["setting_defaults"];
    assert_eq!(
        (&shown["input.1.name"], &shown["input.1.alarm-text"]),
        (&"Input 1".into(), &"Alarm: Pump".into())
    );
    assert_eq!(shown["input.2.mode"], "NC");

    // One bad value refuses the lot, and says which.
    for (body, why) in [
        (
            r#"{"input.1.name":"Tank","input.1.delay-s":"soon"}"#,
            "input.1.delay-s",
        ),
        (
            r#"{"input.1.name":"Tank","input.99.mode":"NC"}"#,
            "inputs 1 to",
        ),
        (
            r#"{"input.1.name":"Tank","password":"1234"}"#,
            "no such setting",
        ),
        (r#"{"alarm.sms":"+46 70 abc"}"#, "not a phone number"),
        (r#"{}"#, "no settings"),
        (r#"{"server.interval-min":null}"#, "cannot be removed"),
        (r#"{"input.1.name":5}"#, "invalid type"),
    ] {
        let (code, answer) = put(&addr, "/api/v1/settings", body);
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(answer.contains(why), "{body}: {answer}");
    }
    assert_eq!(status(&addr, None)["inputs"][0]["name"], "Pump");
    // null: back to the default.
    assert_eq!(
        put(&addr, "/api/v1/settings", r#"{"input.1.delay-s":null}"#).0,
        204
    );
    let s = status(&addr, None);
    assert_eq!(
        (
            &s["inputs"][0]["delay_s"],
            &s["setting_defaults"]["input.1.delay-s"]
        ),
        (&0.into(), &"0".into())
    );

    // Kept across a restart.
    let dir = larmd.stop();
    let mut larmd = Larmd::restart(dir);
    let addr = common::http::address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    assert_eq!(status(&addr, None)["settings"]["input.1.name"], "Pump");
    larmd.stop();
}

#[test]
fn the_simulator_controls_check_what_they_are_given() {
    use common::http::EventStream;
    let (larmd, addr) = start_standard("");
    let post = |path: &str, body: &str| request(&addr, "POST", path, Some(body), None);
    for (code, path, body) in [
        (
            post("/api/v1/sim/call", r#"{"from":"+46\"\r\nRING"}"#),
            "call",
            "a forged line",
        ),
        (
            post("/api/v1/sim/sms", r#"{"from":"nobody","text":"x"}"#),
            "sms",
            "not a number",
        ),
        (
            put(&addr, "/api/v1/sim/modem", r#"{"csq":50}"#),
            "modem",
            "csq 50",
        ),
        (
            put(&addr, "/api/v1/sim/modem", r#"{"csq":5,"network":"5g"}"#),
            "modem",
            "5g",
        ),
        (
            put(&addr, "/api/v1/sim/modem", r#"{"sim":"lost"}"#),
            "modem",
            "lost",
        ),
    ] {
        assert_eq!(code.0, 400, "{path} ({body}): {}", code.1);
    }
    let mut events = EventStream::open(&addr, None, None).unwrap();
    assert_eq!(
        post("/api/v1/sim/call", r#"{"from":"+46701234567"}"#).0,
        202
    );
    assert_eq!(
        events.next_of("incoming-call").data["from"],
        serde_json::Value::Null
    );
    assert_eq!(
        put(&addr, "/api/v1/sim/card", r#"{"present":false}"#).0,
        204
    );
    // The card's event and the red LED's, in either order.
    let (mut card, mut red) = (None, None);
    while card.is_none() || red.is_none() {
        let message = events.next();
        match message.kind.as_str() {
            "card" => card = Some(message.data["extended_io"].clone()),
            // Until red shows something (another LED may change first).
            "leds" => red = led(&message.data, "red")["code"].as_str().map(String::from),
            _ => {}
        }
    }
    assert_eq!(card.unwrap(), "missing");
    assert_eq!(red.as_deref(), Some("extended-io-missing"));
    assert_eq!(status(&addr, None)["extended_io"], "missing");
    assert_eq!(
        put(&addr, "/api/v1/sim/modem", r#"{"network":"none"}"#).0,
        204
    );
    let modem = events.next_of("modem");
    assert_eq!(modem.data["modem"]["network"], "none");
    larmd.stop();
}

/// A raw request with the headers given (and no others but the length).
fn raw(addr: &str, head: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{head}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer[9..12].parse().unwrap()
}

#[test]
fn pages_of_other_sites_and_other_names_are_refused() {
    let (larmd, addr) = start("");
    let rollback =
        format!("POST /api/v1/plugins/sms-commands/rollback HTTP/1.1\r\nHost: {addr}\r\n");
    // A form on another site posting to the unit (CSRF).
    assert_eq!(
        raw(&addr, &format!("{rollback}Origin: http://evil.example\r\n")),
        403
    );
    assert_eq!(raw(&addr, &format!("{rollback}Origin: null\r\n")), 403);
    // The panel's own page is let through (to the 400 for a missing body).
    let switch = format!("PUT /api/v1/outputs/2 HTTP/1.1\r\nHost: {addr}\r\n");
    assert_eq!(
        raw(&addr, &format!("{switch}Origin: http://evil.example\r\n")),
        403
    );
    assert_eq!(
        raw(&addr, &format!("{switch}Origin: http://{addr}\r\n")),
        400
    );
    // Another site's name resolving to the unit (DNS rebinding), with no
    // token to stop it; the unit's own names are fine.
    let get = |host: &str| {
        raw(
            &addr,
            &format!("GET /api/v1/status HTTP/1.1\r\nHost: {host}\r\n"),
        )
    };
    assert_eq!(get("evil.example:8080"), 403);
    assert_eq!(get(&addr), 200);
    assert_eq!(get("localhost:8080"), 200);
    assert_eq!(get("[::1]:8080"), 200);
    larmd.stop();
}

#[test]
fn event_streams_are_limited_and_the_rest_of_the_api_still_answers() {
    use common::http::EventStream;
    let (larmd, addr) = start("");
    let open: Vec<EventStream> = (0..16)
        .map(|_| EventStream::open(&addr, None, None).unwrap())
        .collect();
    let (code, body) = EventStream::open(&addr, None, None).err().unwrap();
    assert_eq!(code, 503, "{body}");
    assert_eq!(status(&addr, None)["alarm_output"], 5);
    drop(open);
    // A closed stream gives its place back (once larmd sees it closed).
    let mut again = None;
    for _ in 0..100 {
        if let Ok(stream) = EventStream::open(&addr, None, None) {
            again = Some(stream);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        again.is_some(),
        "the places of closed streams never came back"
    );
    larmd.stop();
}
