from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.config import Settings, load_config, load_settings
from agentdistill.errors import ConfigError, UnknownConfigKey


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('model = "openai:from-file"\ndevice = "cpu"\n[openai]\ntimeout_s = 5\n')
    env = {"AGENTDISTILL_MODEL": "openai:from-env", "OPENAI_API_KEY": "sk-test"}
    s = load_config(Settings, file=file, env=env, flags={"model": "openai:from-flag", "dtype": None})
    assert (s.model, s.device, s.openai_timeout_s, s.openai_api_key) == ("openai:from-flag", "cpu", 5.0, "sk-test")
    assert "sk-test" not in repr(s)
    assert load_config(Settings, file=file, env=env).model == "openai:from-env"


def test_unknown_key_names_file_key_and_closest_field(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('modle = "x"\n')
    with pytest.raises(UnknownConfigKey, match=r"unknown config key 'modle' in .*c.toml: did you mean 'model'\?"):
        load_config(Settings, file=file)


def test_bad_values_name_field_and_source(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"'openai_max_retries' in environment variable AGENTDISTILL_OPENAI_MAX_RETRIES"
    ):
        load_config(Settings, env={"AGENTDISTILL_OPENAI_MAX_RETRIES": "lots"})
    with pytest.raises(ConfigError, match="device"):
        load_config(Settings, flags={"device": "tpu"})


def test_home_comes_from_env_and_config_file_lives_there(home: Path) -> None:
    (home / "config.toml").write_text('student = "hf:/students/s1"\n')
    s = load_settings()
    assert s.home == home and s.student == "hf:/students/s1" and s.trajectories_path == home / "trajectories.db"
