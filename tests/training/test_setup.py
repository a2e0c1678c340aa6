"""callbacks_from_config: the one place [guard], [pma] and [init] turn into callbacks / a start."""

from __future__ import annotations

import dataclasses

import pytest

from riverbed.errors import ConfigError
from riverbed.merging.pma_snapshots import PMAConfig
from riverbed.training.callbacks import Callback
from riverbed.config.guard import GuardConfig
from riverbed.training.spike_guard import SpikeGuard
from riverbed.training.pma_monitor import PMAMonitor
from riverbed.training.setup import callbacks_from_config


def test_sections_add_their_callbacks_once(tmp_path, tiny_run_config):
    cfg = dataclasses.replace(tiny_run_config, guard=GuardConfig(), pma=PMAConfig(every=2, count=2))
    init, cbs = callbacks_from_config(cfg, tmp_path, "main", init=None)
    assert init is None and [type(c) for c in cbs] == [SpikeGuard, PMAMonitor]
    mine = SpikeGuard(GuardConfig(action="rollback"))
    _, cbs = callbacks_from_config(cfg, tmp_path, "main", init=None, given=[mine])
    assert cbs[0] is mine and [type(c) for c in cbs] == [SpikeGuard, PMAMonitor]  # no second guard
    _, cbs = callbacks_from_config(tiny_run_config, tmp_path, "main", init=None)
    assert cbs == ()


def test_a_callback_must_be_a_callback(tmp_path, tiny_run_config):
    class Duck:
        def on_step_end(self, ctx):
            pass

    with pytest.raises(ConfigError, match="Duck: not a riverbed.training.Callback"):
        callbacks_from_config(tiny_run_config, tmp_path, "main", init=None, given=[Duck()])
    assert callbacks_from_config(tiny_run_config, tmp_path, "main", init=None, given=[Callback()])[1]
