"""[init]: merged initialisation's configuration, validated at the edge."""

import pytest

from riverbed.errors import ConfigError
from riverbed.config.init import InitConfig


def test_init_config_validation():
    assert InitConfig(from_merge="runs/a", last=5).every == 1
    with pytest.raises(ConfigError, match="init.from_merge=''"):
        InitConfig()
    with pytest.raises(ConfigError, match="init.last=0"):
        InitConfig(from_merge="x", last=0)
    with pytest.raises(ConfigError, match="init.optimizer_state='keep'"):
        InitConfig(from_merge="x", optimizer_state="keep")
