"""Test fixture (Python): config `mode` picks the behaviour.

ok -> logs one line, provider-id "ok"; loop -> spins forever (the CPU budget
must stop it); memory -> keeps allocating 1 MiB blocks (the memory limit
must stop it).
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log
from wit_world.imports import postern_plugin_types as t


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return t.PluginInfo(name="misbehave-python", version="0.1.0", description="test fixture", config_keys=[])

    def validate_recipient(self, send_to):
        if send_to == "bad":
            raise Err("bad recipient")

    def deliver(self, message):
        mode = config.get("mode") or ""
        if mode == "ok":
            log.log(log.Level.INFO, f"ok for {message.username}")
            return t.Receipt(provider_id="ok")
        if mode == "loop":
            n = 0
            while True:
                n = (n + 1) % 1000003
        if mode == "memory":
            keep = []
            while True:
                keep.append(bytearray(b"x" * (1 << 20)))
        raise Err(t.DeliveryError_Misconfigured(f"unknown mode {mode}"))
