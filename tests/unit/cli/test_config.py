"""The CLI's configuration: flags beat the environment, which beats the config file, which beats defaults."""

from pathlib import Path

import pytest

from sluice.cli.config import ConfigError, config_path, load, parse_file, resolve


def test_flags_beat_env_which_beats_the_file_which_beats_defaults():
    file_values = {"url": "http://file:8000", "topic_prefix": "from-file", "api_key": "file-key"}
    env = {"SLUICE_URL": "http://env:8000", "SLUICE_API_KEY": "env-key"}
    config = resolve({"url": "http://flag:8000"}, env, file_values)
    assert config.url == "http://flag:8000"
    assert config.api_key == "env-key"
    assert config.topic_prefix == "from-file"


def test_the_config_file_is_found_through_sluice_config_or_xdg(tmp_path: Path):
    assert config_path({"SLUICE_CONFIG": "/etc/sluice.toml"}) == Path("/etc/sluice.toml")
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "sluice" / "config.toml"


def test_a_config_file_is_read_and_a_missing_one_is_fine(tmp_path: Path):
    path = tmp_path / "config.toml"
    assert load({}, {"SLUICE_CONFIG": str(path)}).url == "http://127.0.0.1:8000"
    path.write_text('url = "http://intake.internal:8000"\napi_key = "sk-1"\n')
    config = load({}, {"SLUICE_CONFIG": str(path)})
    assert (config.url, config.api_key) == ("http://intake.internal:8000", "sk-1")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("url = ", "not valid TOML"), ('colour = "blue"', "unknown keys colour"), ("url = 8000", "must be a string")],
)
def test_a_broken_config_file_is_a_clear_error(text, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_file(text, "config.toml")
