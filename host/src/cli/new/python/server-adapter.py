"""{{name}}: a server adapter for a larm unit. It publishes alarms and
restores as plain text on `alarms`, and takes `on N` / `off N` on `cmd` to
switch output N.

A plugin is a WebAssembly component. The unit calls its exports (below:
`init`, `on_timer`, `on_connect`, `encode`, `on_downlink`), one event at a
time, and the plugin acts through the host's interfaces (`io`, `settings`,
...), each allowed only as far as its entry's `[plugins.grants]` says. The
host owns the connection (MQTT, TLS, the outbox): an adapter only turns
reports into messages and back.

`componentize-py -d wit -w plugin bindings .` writes the typed API
(`wit_world/`) for your editor; `componentize` makes it by itself.
"""

from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.adapter import Message
from wit_world.imports import io
from wit_world.imports.types import Report, Report_Alarm, Report_Restore, TimerEvent


class Lifecycle(exports.Lifecycle):
    def init(self, config: List[Tuple[str, str]]) -> None:
        """The entry's `[plugins.config]` table, as key/value pairs. This
        plugin takes none; raising Err(text) keeps it from starting."""
        for key, _ in config:
            raise Err(f"unknown config key `{key}` (this plugin takes none)")

    def on_timer(self, event: TimerEvent) -> None:
        """A timer set with `timers.set` fired. This plugin sets none."""


class Adapter(exports.Adapter):
    def on_connect(self, base: str) -> List[Message]:
        """Messages to publish at each connection: none here."""
        return []

    def encode(self, id: str, report: Report) -> List[Message]:
        """A report to send. `id` stays the same when the outbox sends it
        again, so a server can drop a copy. Reports this adapter leaves out
        (an empty list) are dropped."""
        if isinstance(report, Report_Alarm):
            kind, a = "ALARM", report.value
        elif isinstance(report, Report_Restore):
            kind, a = "RESTORE", report.value
        else:
            return []
        text = f"{id} {kind} input {a.input} {a.name}: {a.text}"
        return [Message(topic="alarms", payload=text.encode(), retain=False)]

    def on_downlink(self, message: Message) -> None:
        """A message from the server. Raising Err(text) refuses it; the host
        logs why."""
        text = message.payload.decode("utf-8", "replace").strip()
        words = text.split()
        if len(words) != 2 or words[0] not in ("on", "off") or not words[1].isdigit():
            raise Err(f"expected `on N` or `off N`, not `{text}`")
        try:
            io.set_output(int(words[1]), words[0] == "on")
        except Err as e:
            raise Err(f"output {words[1]}: {e.value}")
