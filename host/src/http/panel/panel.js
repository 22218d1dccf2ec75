// The larm web panel: reads GET /api/v1/status once, then follows
// GET /api/v1/events from that status's event_id. Plain JS, no build step.
// Every text from the unit goes in with textContent, never as HTML: SMS
// texts, names and faults come from outside.
"use strict";

const TOKEN_KEY = "larm-token";
let token = sessionStorage.getItem(TOKEN_KEY);
let status = null;
let lastEventId = null;
let refetchTimer = null;
// Events that arrive while the status is read again, applied after it if
// they are newer than it (its event_id).
let heldBack = null;
// A reset came while the status was being read: read it again after.
let readAgain = false;
let following = false;
// When each LED's view arrived (performance.now()), to play its pattern.
const ledSince = {};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
}

class Refused extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function api(method, path, body, raw) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  let payload;
  if (raw) {
    headers["Content-Type"] = "application/wasm";
    payload = raw;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  if (res.status === 401) {
    showLogin(token ? "That token is not right." : "");
    throw new Refused(401, "a valid token is required");
  }
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Refused(res.status, (json && json.error) || res.statusText);
  return json;
}

// ---- login ----

function showLogin(why) {
  status = null;
  $("unit").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = why || "";
  setLive("login", "login");
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value;
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  location.reload();
});

function setLive(state, words) {
  $("live").dataset.state = state;
  $("live").textContent = words;
}

// ---- LEDs: the unit's blink codes, drawn with the unit's timing ----

// Lit at `t` ms into a pattern? Mirrors firmware-bridge's Pattern::at:
// a pattern starts with its pause, then its first group.
function litAt(view, t) {
  if (view.mode === "off") return false;
  if (view.mode === "steady") return true;
  const period = view.groups.reduce(
    (sum, n) => sum + n * (view.on_ms + view.off_ms) + view.pause_ms, 0);
  let left = (t + period - view.pause_ms) % period;
  for (const n of view.groups) {
    for (let i = 0; i < n; i++) {
      if (left < view.on_ms) return true;
      left -= view.on_ms;
      if (left < view.off_ms) return false;
      left -= view.off_ms;
    }
    if (left < view.pause_ms) return false;
    left -= view.pause_ms;
  }
  return false;
}

function showLeds(leds) {
  const now = performance.now();
  for (const view of leds) {
    ledSince[view.colour] = { view, at: now - view.phase_ms };
    const text = $("led-" + view.colour + "-text");
    text.textContent = view.text;
    const led = $("led-" + view.colour);
    led.dataset.mode = view.mode;
    led.dataset.code = view.code || "";
    led.title = view.colour + ": " + view.text;
  }
}

function playLeds() {
  const now = performance.now();
  for (const colour of Object.keys(ledSince)) {
    const { view, at } = ledSince[colour];
    const lit = litAt(view, now - at) ? "true" : "false";
    const led = $("led-" + colour);
    if (led.dataset.lit !== lit) led.dataset.lit = lit;
  }
}
setInterval(playLeds, 20);

// ---- rendering the status ----

function simOnly() {
  for (const node of document.querySelectorAll(".sim-only")) {
    node.hidden = !status.simulated;
  }
  $("phone-box").hidden = !status.simulated_modem;
  $("sim-modem").hidden = !status.simulated_modem;
}

function renderInputs() {
  const rows = status.inputs.map((input) => {
    const contact = input.active === null ? "unreadable" : input.active ? "closed" : "open";
    const alarm = input.alarm === null ? "?" : input.alarm ? "ALARM" : "normal";
    const row = el("tr", { id: "input-" + input.id },
      el("td", {}, input.id),
      el("td", {}, input.name),
      el("td", {}, input.mode),
      el("td", {}, input.delay_s + " s"),
      el("td", { className: "contact" }, contact),
      el("td", { className: input.alarm ? "state alarm" : "state" }, alarm));
    row.dataset.closed = String(input.active);
    row.dataset.alarm = String(input.alarm);
    if (status.simulated) {
      const button = el("button", { type: "button", className: "sim-input" },
        input.active ? "Open" : "Close");
      button.addEventListener("click", () => act(
        () => api("PUT", "/api/v1/sim/inputs/" + input.id, { closed: !input.active }), "sim-error"));
      row.append(el("td", {}, button));
    }
    return row;
  });
  $("inputs").replaceChildren(...rows);
  const alarms = status.inputs.filter((i) => i.alarm).map((i) => i.name);
  $("alarms").textContent = alarms.length ? "In alarm: " + alarms.join(", ") : "No input in alarm";
  $("alarms").dataset.alarm = String(alarms.length > 0);
}

function renderOutputs() {
  const rows = status.outputs.map((output) => {
    const on = output.active;
    const name = output.id === status.alarm_output ? output.id + " (ALARM)" : String(output.id);
    const button = el("button", { type: "button", className: "switch" }, on ? "Switch off" : "Switch on");
    button.addEventListener("click", () => act(
      () => api("PUT", "/api/v1/outputs/" + output.id, { on: !on }), "output-error"));
    const row = el("tr", { id: "output-" + output.id },
      el("td", {}, name),
      el("td", { className: on ? "state on" : "state" }, on === null ? "unreadable" : on ? "ON" : "off"),
      el("td", {}, output.held_by || ""),
      el("td", {}, button));
    row.dataset.on = String(on);
    return row;
  });
  $("outputs").replaceChildren(...rows);
  $("card").textContent = status.extended_io;
  const toggle = $("card-toggle");
  toggle.hidden = !status.simulated || status.extended_io === "notfitted";
  toggle.textContent = status.extended_io === "present" ? "Pull the card" : "Put the card back";
}

function renderModem() {
  const m = status.modem;
  $("modem-sim").textContent = m ? (m.answering ? m.sim : "not answering") : "no modem";
  $("modem-network").textContent = m ? m.network : "-";
  $("modem-operator").textContent = (m && m.operator) || "-";
  const bars = m ? m.signal_bars : 0;
  $("modem-bars").textContent = bars + " of 5";
  $("bars").replaceChildren(...[1, 2, 3, 4, 5].map((n) =>
    el("i", { className: n <= bars ? "bar lit" : "bar" })));
  $("bars").dataset.bars = String(bars);
}

function renderServer() {
  const s = status.server;
  $("server").textContent = !s.configured ? "no server configured"
    : s.connected ? "connected" : s.failing ? "cannot connect" : "not connected";
  $("outbox").textContent = s.outbox_depth === 0 ? "empty"
    : s.outbox_depth + " waiting" + (s.outbox_oldest_s != null ? ", the oldest for " + s.outbox_oldest_s + " s" : "");
}

function renderPlugins() {
  const rows = status.plugins.map((p) => {
    const version = p.version ? p.version + (p.on_probation ? " (on probation)" : " (field update)") : "from the config";
    const rollback = el("button", { type: "button", hidden: !p.version }, "Roll back");
    rollback.addEventListener("click", () => act(
      () => api("POST", "/api/v1/plugins/" + encodeURIComponent(p.name) + "/rollback"), "plugin-error"));
    return el("tr", { id: "plugin-" + p.name },
      el("td", {}, p.name),
      el("td", { className: "state " + p.state }, p.state),
      el("td", {}, version),
      el("td", {}, p.faults),
      el("td", {}, p.last_fault || ""),
      el("td", {}, rollback));
  });
  $("plugins").replaceChildren(...rows);
  const select = $("install-name");
  const chosen = select.value;
  select.replaceChildren(...status.plugins.map((p) => el("option", { value: p.name }, p.name)));
  if (chosen) select.value = chosen;
}

// The settings a person changes here. Hints are what each is when not
// set, as the unit says (setting_defaults): the page knows no rule itself.
function settingFields() {
  const fields = [];
  const input = status.inputs.find((i) => String(i.id) === $("settings-input").value) || status.inputs[0];
  if (input) {
    const group = "Input " + input.id;
    const key = (what) => `input.${input.id}.${what}`;
    fields.push({ group, key: key("name"), label: "Name" });
    fields.push({ group, key: key("mode"), label: "Wiring", choices: ["NO", "NC"] });
    fields.push({ group, key: key("delay-s"), label: "Delay (s)", numeric: true });
    fields.push({ group, key: key("alarm-text"), label: "Alarm text" });
    fields.push({ group, key: key("restore-text"), label: "Restore text" });
  }
  fields.push({ group: "Alarms", key: "alarm.sms", label: "SMS to (numbers, comma-separated)" });
  fields.push({ group: "Alarms", key: "alarm.call", label: "Call" });
  fields.push({ group: "Alarms", key: "alarm.ring-s", label: "Ring (s)", numeric: true });
  fields.push({ group: "Server", key: "server.interval-min", label: "Interval (min, 0 = never)", numeric: true });
  return fields;
}

function renderSettings() {
  const form = $("settings-fields");
  // Not while someone is typing in it: their edit would be lost.
  if (form.contains(document.activeElement)) return;
  const choice = $("settings-input");
  const chosen = choice.value || "1";
  choice.replaceChildren(...status.inputs.map((i) => el("option", { value: String(i.id) }, i.id + ": " + i.name)));
  choice.value = chosen;
  const groups = new Map();
  for (const field of settingFields()) {
    const value = status.settings[field.key] ?? "";
    const hint = status.setting_defaults[field.key] ?? "";
    let input;
    if (field.choices) {
      input = el("select", {}, el("option", { value: "" }, "(" + (hint || "default") + ")"),
        ...field.choices.map((c) => el("option", { value: c }, c)));
      input.value = field.choices.includes(value.toUpperCase()) ? value.toUpperCase() : "";
    } else {
      input = el("input", { value, placeholder: hint });
      if (field.numeric) input.inputMode = "numeric";
    }
    input.name = field.key;
    input.dataset.was = input.value;
    const label = el("label", {}, field.label, input);
    // A setting that is set can go back to what it is when not set (an
    // empty text is a value of its own: no restore SMS, no numbers).
    if (field.key in status.settings && !field.choices) {
      const reset = el("button", { type: "button", className: "reset", title: "back to " + (hint || "the default") }, "Default");
      reset.dataset.resetFor = field.key;
      reset.addEventListener("click", () => {
        input.value = "";
        input.dataset.reset = "1";
        input.placeholder = hint;
      });
      label.append(reset);
    }
    if (!groups.has(field.group)) groups.set(field.group, el("fieldset", {}, el("legend", {}, field.group)));
    groups.get(field.group).append(label);
  }
  form.replaceChildren(...groups.values());
}

$("settings-input").addEventListener("change", () => renderSettings());

$("settings").addEventListener("submit", async (e) => {
  e.preventDefault();
  const changes = {};
  for (const input of $("settings-fields").querySelectorAll("[name]")) {
    // Back to the default: null (a select's "(default)" is that too).
    const reset = input.dataset.reset === "1" || (input.tagName === "SELECT" && input.value === "");
    if (input.value !== input.dataset.was) changes[input.name] = reset ? null : input.value;
    else if (input.dataset.reset === "1") changes[input.name] = null; // set to "" before
  }
  const result = $("settings-result");
  if (Object.keys(changes).length === 0) {
    result.textContent = "Nothing changed.";
    return;
  }
  try {
    await api("PUT", "/api/v1/settings", changes);
    result.textContent = "Saved.";
    result.className = "";
    document.activeElement.blur();
    await refetch();
  } catch (err) {
    result.textContent = err.message;
    result.className = "error";
  }
});

function render() {
  $("unit-id").textContent = status.unit_id;
  simOnly();
  showLeds(status.leds);
  renderInputs();
  renderOutputs();
  renderModem();
  renderServer();
  renderPlugins();
  renderSettings();
}

// ---- actions ----

async function act(call, errorBox) {
  $(errorBox).textContent = "";
  try {
    await call();
  } catch (err) {
    if (err.code !== 401) $(errorBox).textContent = err.message;
  }
}

$("card-toggle").addEventListener("click", () => act(
  () => api("PUT", "/api/v1/sim/card", { present: status.extended_io !== "present" }), "output-error"));

$("sim-sms").addEventListener("submit", (e) => {
  e.preventDefault();
  act(() => api("POST", "/api/v1/sim/sms", { from: $("sms-from").value, text: $("sms-text").value }), "sim-error");
});

$("ring").addEventListener("click", () => act(
  () => api("POST", "/api/v1/sim/call", { from: $("sms-from").value }), "sim-error"));

$("sim-modem").addEventListener("submit", (e) => {
  e.preventDefault();
  const change = {};
  if ($("sim-csq").value) change.csq = Number($("sim-csq").value);
  if ($("sim-network").value) change.network = $("sim-network").value;
  if ($("sim-card").value) change.sim = $("sim-card").value;
  act(() => api("PUT", "/api/v1/sim/modem", change), "sim-error");
});

$("install").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("install-file").files[0];
  const name = $("install-name").value;
  if (!file || !name) return;
  await act(async () => {
    const done = await api("PUT", "/api/v1/plugins/" + encodeURIComponent(name), undefined, await file.arrayBuffer());
    $("plugin-error").textContent = "Installed: " + JSON.stringify(done);
  }, "plugin-error");
});

// ---- the event stream ----

function log(words, kind) {
  const when = new Date().toLocaleTimeString();
  const item = el("li", { className: kind || "" }, el("time", {}, when), " ", words);
  $("log").prepend(item);
  while ($("log").children.length > 100) $("log").lastChild.remove();
}

function refetchSoon() {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(refetch, 150);
}

function apply(event) {
  switch (event.type) {
    case "input": {
      const input = status.inputs.find((i) => i.id === event.input);
      if (input) {
        input.active = event.closed;
        input.alarm = event.alarm;
      }
      renderInputs();
      break;
    }
    case "output": {
      const output = status.outputs.find((o) => o.id === event.output);
      if (output) {
        output.active = event.on;
        output.held_by = event.held_by;
        output.off_at_ms = event.off_at_ms;
      }
      renderOutputs();
      log(`Output ${event.output} ${event.on ? "on" : "off"} (by ${event.by})`);
      break;
    }
    case "leds": showLeds(event.leds); break;
    case "modem": status.modem = event.modem; renderModem(); break;
    case "server":
      status.server.connected = event.connected;
      status.server.failing = event.failing;
      renderServer();
      break;
    case "outbox":
      status.server.outbox_depth = event.depth;
      status.server.outbox_oldest_s = event.oldest_s;
      renderServer();
      break;
    case "card": status.extended_io = event.extended_io; renderOutputs(); break;
    case "plugins": status.plugins = event.plugins; renderPlugins(); break;
    case "settings": refetchSoon(); break; // names, wiring and delays shown with the inputs
    case "sms-in": log(`SMS from ${event.from ?? "(number hidden)"}: ${event.text ?? "(text hidden)"}`, "sms"); break;
    case "sms-out": log(`SMS to ${event.to ?? "(number hidden)"} by ${event.by}: ${event.text ?? "(text hidden)"}`, "sms"); break;
    case "call": log(`Alarm call to ${event.to ?? "(number hidden)"} by ${event.by}`, "alarm"); break;
    case "incoming-call": log(`Call from ${event.from ?? "(number hidden)"}`); break;
    case "alarm": log(`ALARM on input ${event.input} (${event.name}): ${event.text}`, "alarm"); break;
    case "restore": log(`Restored: input ${event.input} (${event.name}): ${event.text}`); break;
    case "reset": refetch(); break;
  }
}

// The place of an event id (RUN-SEQ) in its run.
function seqOf(id) {
  const [run, seq] = String(id).split("-");
  return { run, seq: Number(seq) };
}

function receive(id, event) {
  if (heldBack && event.type === "reset") {
    readAgain = true;
  } else if (heldBack) {
    heldBack.push({ id, event });
  } else {
    apply(event);
  }
}

async function follow() {
  if (following) return;
  following = true;
  try {
    await followStream();
  } finally {
    following = false;
  }
}

async function followStream() {
  for (;;) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (token) headers.Authorization = "Bearer " + token;
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const res = await fetch("/api/v1/events", { headers });
      if (res.status === 401) {
        showLogin("That token is not right.");
        return;
      }
      if (!res.ok) throw new Error(res.statusText);
      setLive("live", "live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id = null;
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("id:")) id = line.slice(3).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (id) lastEventId = id;
          if (data && status) receive(id, JSON.parse(data));
        }
      }
    } catch (err) {
      // The unit restarts, or the network went: try again.
    }
    if (!status) return;
    setLive("lost", "reconnecting");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function refetch() {
  if (heldBack) return; // one read at a time; its held events follow it
  heldBack = [];
  try {
    status = await api("GET", "/api/v1/status");
    render();
    const read = seqOf(status.event_id);
    for (const { id, event } of heldBack) {
      const seen = seqOf(id);
      if (seen.run !== read.run || seen.seq > read.seq) apply(event);
    }
  } catch (err) {
    // A refusal shows the login; anything else: what came meanwhile still
    // applies to the status the page has.
    for (const { event } of heldBack) apply(event);
  } finally {
    heldBack = null;
  }
  if (readAgain) {
    readAgain = false;
    refetch();
  }
}

async function start() {
  try {
    status = await api("GET", "/api/v1/status");
  } catch (err) {
    if (err.code !== 401) setLive("lost", "cannot reach the unit: " + err.message);
    return;
  }
  lastEventId = status.event_id;
  $("login").hidden = true;
  $("unit").hidden = false;
  $("logout").hidden = !token;
  render();
  follow();
}

start();
