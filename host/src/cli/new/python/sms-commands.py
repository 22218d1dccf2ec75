"""{{name}}: an SMS command set for a larm unit. `<password> PING` gets the
reply `PONG, signal N/5`; every other message is left to the command sets
after it in the unit config (the standard ones, there).

A plugin is a WebAssembly component. The unit calls its exports (below:
`init`, `on_timer`, `on_sms`, `on_call`), one event at a time, and the
plugin acts through the host's interfaces (`sms`, `password`, `status`,
...), each allowed only as far as its entry's `[plugins.grants]` says.

`componentize-py -d wit -w plugin bindings .` writes the typed API
(`wit_world/`) for your editor; `componentize` makes it by itself.
"""

from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, password, sms, status
from wit_world.imports.types import CallEvent, SmsMessage, TimerEvent


class Lifecycle(exports.Lifecycle):
    def init(self, config: List[Tuple[str, str]]) -> None:
        """The entry's `[plugins.config]` table, as key/value pairs. This
        plugin takes none; raising Err(text) keeps it from starting."""
        for key, _ in config:
            raise Err(f"unknown config key `{key}` (this plugin takes none)")

    def on_timer(self, event: TimerEvent) -> None:
        """A timer set with `timers.set` fired. This plugin sets none."""


class Commands(exports.Commands):
    def on_sms(self, message: SmsMessage) -> bool:
        """An SMS arrived. Returning True claims it: the command sets after
        this one do not see it."""
        words = message.text.split()
        if len(words) != 2 or words[1].upper() != "PING":
            return False
        # The host checks the password (and counts wrong ones per sender);
        # the plugin never reads it. A wrong one gets no reply, as the
        # manual's unit does.
        try:
            if not password.verify(message.sender, words[0]):
                return True
        except Err as e:
            log.log(log.Level.WARN, f"password check: {e.value}")
            return True
        bars = status.device().signal_bars
        try:
            sms.send(message.sender, f"PONG, signal {bars}/5")
        except Err as e:
            log.log(log.Level.WARN, f"reply: {e.value}")
        return True

    def on_call(self, call: CallEvent) -> bool:
        """A call rings. This plugin leaves calls to the others."""
        return False
