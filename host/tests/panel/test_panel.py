"""The web panel in a real browser: Debian's Chromium, driven by Playwright.

Each test starts larmd on the simulated board (the standard unit of
examples/sim.toml, with the API on a free loopback port) and uses the page
as a person would. Run by host/tests/panel.rs (LARM_TEST_BROWSER=1), which
passes larmd's path in LARMD; LARM_SCREENSHOTS=DIR also saves the panel's
screenshots there (docs/ keeps them).
"""

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

LARMD = os.environ["LARMD"]
REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("LARM_CHROMIUM", "/usr/bin/chromium")
# As root (CI) Chromium needs --no-sandbox; the rest keep it from reaching
# for Google's hosts on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Larmd:
    """larmd running in `data`, its log lines read in the background."""

    def __init__(self, data, config=None, port=0):
        args = [LARMD, "run", "--http", f"127.0.0.1:{port}"]
        if config:
            args += ["--config", str(config)]
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.process = subprocess.Popen(
            args, cwd=data, env=env, stdin=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for("HTTP API on http://")
        self.url = "http://" + line.rsplit("http://", 1)[1].strip()

    def _read(self):
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text, within=30):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.log.append(line)
            if text in line:
                return line
        raise AssertionError(f"larmd never logged {text!r}; last lines:\n" + "\n".join(self.log[-30:]))

    def api(self, method, path, body=None, token=None):
        request = urllib.request.Request(self.url + path, method=method)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, data, timeout=10) as answer:
                text = answer.read().decode()
                return answer.status, json.loads(text) if text else None
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read().decode() or "null")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)


class PanelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="larm-panel-")
        self.units = []
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def tearDown(self):
        self.page.close()
        for unit in self.units:
            if unit.process.poll() is None:
                unit.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(self.errors, [], "the page's scripts failed")

    def start(self, config=None, port=0):
        unit = Larmd(self.dir, config, port)
        self.units.append(unit)
        return unit

    def open(self, unit):
        self.page.goto(unit.url + "/")
        expect(self.page.locator("#live")).to_have_text("live")

    def red_groups(self, seconds):
        """The red LED's groups of blinks as the page draws them: the
        number of blinks in each whole group seen within `seconds`."""
        changes = self.page.evaluate(
            """async (ms) => {
                const led = document.getElementById("led-red");
                const seen = [];
                let last = null;
                const t0 = performance.now();
                while (performance.now() - t0 < ms) {
                    const lit = led.dataset.lit === "true";
                    if (lit !== last) { seen.push([performance.now() - t0, lit]); last = lit; }
                    await new Promise((r) => setTimeout(r, 10));
                }
                return seen;
            }""",
            seconds * 1000)
        rises = [t for t, lit in changes[1:] if lit]
        groups, count, previous = [], 0, None
        for t in rises:
            # Blinks in a group start 600 ms apart; the next group 2.1 s on.
            if previous is not None and t - previous > 1200:
                groups.append(count)
                count = 0
            count += 1
            previous = t
        # The first and last groups may be cut by the window.
        return groups[1:]

    def test_the_red_led_blinks_the_sim_and_network_codes(self):
        unit = self.start()
        self.open(unit)
        expect(self.page.locator("#led-red")).to_have_attribute("data-mode", "off")

        # From the simulator's controls on the page: the SIM asks for a PIN.
        self.page.select_option("#sim-card", "pin")
        self.page.click("#sim-modem button[type=submit]")
        expect(self.page.locator("#led-red")).to_have_attribute("data-code", "sim-error")
        groups = self.red_groups(9)
        self.assertTrue(groups and all(n == 2 for n in groups), groups)
        expect(self.page.locator("#led-red-text")).to_have_text("2 blinks (SIM card error or PIN)")

        # The SIM is fine again, the network gone: 3 blinks.
        self.page.select_option("#sim-card", "ready")
        self.page.select_option("#sim-network", "none")
        self.page.click("#sim-modem button[type=submit]")
        expect(self.page.locator("#led-red")).to_have_attribute("data-code", "no-network")
        groups = self.red_groups(10)
        self.assertTrue(groups and all(n == 3 for n in groups), groups)

    def test_an_output_switched_from_the_page_is_on_in_the_api(self):
        unit = self.start()
        self.open(unit)
        self.page.click("#output-3 button.switch")
        expect(self.page.locator("#output-3")).to_have_attribute("data-on", "true")
        code, status = unit.api("GET", "/api/v1/status")
        self.assertEqual(code, 200)
        self.assertTrue(status["outputs"][2]["active"])
        self.assertEqual(status["outputs"][2]["held_by"], "http")
        unit.wait_for("output 3 on (by http)")

    def test_an_input_closed_from_the_simulator_raises_the_alarm_in_the_page(self):
        unit = self.start()
        self.open(unit)
        self.page.click("#input-1 button.sim-input")
        expect(self.page.locator("#input-1")).to_have_attribute("data-alarm", "true")
        expect(self.page.locator("#alarms")).to_have_text("In alarm: Input 1")
        # The ALARM output (5), switched by std-input-rules.
        expect(self.page.locator("#output-5")).to_have_attribute("data-on", "true")
        expect(self.page.locator("#log")).to_contain_text("ALARM on input 1")
        # The alarm SMS, numbers and texts hidden: this API has no token.
        expect(self.page.locator("#log")).to_contain_text("SMS to (number hidden) by input-rules")
        if os.environ.get("LARM_SCREENSHOTS"):
            self.screenshots(Path(os.environ["LARM_SCREENSHOTS"]))

    def screenshots(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(500)
        self.page.screenshot(path=str(folder / "panel.png"), full_page=True)
        phone = self.browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        phone.goto(self.page.url)
        expect(phone.locator("#live")).to_have_text("live")
        phone.wait_for_timeout(500)
        phone.screenshot(path=str(folder / "panel-phone.png"))
        phone.close()

    def test_a_setting_changed_in_the_page_is_kept_across_a_restart(self):
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        unit = self.start(port=port)
        self.open(unit)
        self.page.select_option("#settings-input", "3")
        self.page.fill("[name='input.3.name']", "Pump house")
        self.page.fill("[name='input.3.delay-s']", "15")
        self.page.click("#settings button[type=submit]")
        expect(self.page.locator("#settings-result")).to_have_text("Saved.")
        expect(self.page.locator("#input-3")).to_contain_text("Pump house")

        # A value the unit's rules refuse is refused here too, saying why.
        self.page.select_option("#settings-input", "3")
        self.page.fill("[name='input.3.delay-s']", "forever")
        self.page.click("#settings button[type=submit]")
        expect(self.page.locator("#settings-result")).to_contain_text("not a number")

        unit.stop()
        # The page sees the unit go, and follows it again once it is back
        # on the same address: its last event id is of the run before, so
        # it reads the status anew.
        expect(self.page.locator("#live")).to_have_text("reconnecting")
        unit = self.start(port=port)
        expect(self.page.locator("#live")).to_have_text("live", timeout=15000)
        self.assertEqual(unit.api("PUT", "/api/v1/sim/inputs/4", {"closed": True})[0], 204)
        expect(self.page.locator("#input-4")).to_have_attribute("data-closed", "true")
        expect(self.page.locator("#input-3")).to_contain_text("Pump house")
        expect(self.page.locator("#input-3")).to_contain_text("15 s")
        # Back to the config's default.
        self.page.select_option("#settings-input", "3")
        self.page.click("[data-reset-for='input.3.name']")
        self.page.click("#settings button[type=submit]")
        expect(self.page.locator("#settings-result")).to_have_text("Saved.")
        expect(self.page.locator("#input-3")).to_contain_text("Frysrum")

    def test_without_the_token_only_the_login_shows(self):
        config = Path(self.dir) / "unit.toml"
        config.write_text((REPO / "examples/sim.toml").read_text()
                          + '\n[http]\ntoken = "pump-house-7"\n')
        unit = self.start(config)
        code, _ = unit.api("GET", "/api/v1/status")
        self.assertEqual(code, 401)
        self.page.goto(unit.url + "/")
        expect(self.page.locator("#login")).to_be_visible()
        expect(self.page.locator("#unit")).to_be_hidden()
        expect(self.page.locator("#inputs tr")).to_have_count(0)

        self.page.fill("#token", "wrong")
        self.page.click("#login button[type=submit]")
        expect(self.page.locator("#login-error")).to_have_text("That token is not right.")
        expect(self.page.locator("#unit")).to_be_hidden()

        self.page.fill("#token", "pump-house-7")
        self.page.click("#login button[type=submit]")
        expect(self.page.locator("#unit")).to_be_visible()
        expect(self.page.locator("#live")).to_have_text("live")
        # Kept for the session: a reload does not ask again.
        self.page.reload()
        expect(self.page.locator("#unit")).to_be_visible()
        expect(self.page.locator("#login")).to_be_hidden()
        # With the token, the stream carries numbers and texts.
        self.page.fill("#sms-text", "0000 STATUS")
        self.page.click("#sim-sms button[type=submit]")
        expect(self.page.locator("#log")).to_contain_text("SMS from +46701234567: 0000 STATUS")


if __name__ == "__main__":
    unittest.main(verbosity=2)
