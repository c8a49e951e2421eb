"""The ``values_every`` setting: from the file or the environment, checked, and handed to the runner."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, load_config
from engine.runner import VALUES_EVERY


def test_default_environment_and_file(tmp_path) -> None:
    assert load_config(env={}).values_every == VALUES_EVERY == 300
    assert load_config(env={"MONITORS_ENGINE_VALUES_EVERY": "60"}).values_every == 60
    path = tmp_path / "engine.toml"
    path.write_text("values_every = 0\n")
    assert load_config(str(path), env={}).values_every == 0


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_wrong_value_says_what_is_wrong(value) -> None:
    with pytest.raises(ConfigError, match="values_every"):
        load_config(env={"MONITORS_ENGINE_VALUES_EVERY": value})
