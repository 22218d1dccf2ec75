"""{{name}}: an input rule for a larm unit. Output N follows input N: on
while the input is closed to COM, off when it opens.

A plugin is a WebAssembly component. The unit calls its exports (below:
`init`, `on_timer`, `on_input`), one event at a time, and the plugin acts
through the host's interfaces (`io`, `sms`, `kv`, ...), each allowed only as
far as its entry's `[plugins.grants]` in the unit config says.

`componentize-py -d wit -w plugin bindings .` writes the typed API
(`wit_world/`) for your editor; `componentize` makes it by itself.
"""

from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import io, log
from wit_world.imports.types import Contact, InputEvent, TimerEvent

# The inputs that take part (empty: all). After a fault or an update the
# unit makes a fresh instance and calls `init` again; what must outlive an
# instance goes into `kv`.
INPUTS: List[int] = []


class Lifecycle(exports.Lifecycle):
    def init(self, config: List[Tuple[str, str]]) -> None:
        """The entry's `[plugins.config]` table, as key/value pairs: a list
        such as `inputs = [1, 3]` arrives as ("inputs", "1,3"). Raising
        Err(text) keeps the plugin from starting; `larmd check` shows it."""
        INPUTS.clear()
        for key, value in config:
            if key != "inputs":
                raise Err(f"unknown config key `{key}` (this plugin takes `inputs`)")
            for n in filter(None, (part.strip() for part in value.split(","))):
                if not n.isdigit():
                    raise Err(f"inputs: `{n}` is not an input number")
                INPUTS.append(int(n))
        log.log(log.Level.INFO, f"following inputs {INPUTS} (empty: all)")

    def on_timer(self, event: TimerEvent) -> None:
        """A timer set with `timers.set` fired. This rule sets none."""


class Rule(exports.Rule):
    def on_input(self, event: InputEvent) -> None:
        """An input changed (after debouncing)."""
        if INPUTS and event.input not in INPUTS:
            return
        if event.input > io.output_count():
            return
        try:
            io.set_output(event.input, event.contact == Contact.CLOSED)
        except Err as e:
            # The unit logs every output change; a refusal (not granted,
            # held by a higher owner) is worth a line of our own.
            log.log(log.Level.WARN, f"output {event.input}: {e.value}")
