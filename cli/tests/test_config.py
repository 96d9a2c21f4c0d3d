"""Where the CLI finds the gateway and the token: options, then environment, then the config file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from prodflow_cli import config


def test_precedence_option_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    monkeypatch.setenv("PRODFLOW_CONFIG", str(path))
    monkeypatch.delenv("PRODFLOW_URL", raising=False)
    monkeypatch.delenv("PRODFLOW_TOKEN", raising=False)
    assert config.resolve() == config.Config(url=config.DEFAULT_URL, token=None)
    config.save(config.Config(url="http://saved:1/", token="pf_saved"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.resolve() == config.Config(url="http://saved:1", token="pf_saved")
    monkeypatch.setenv("PRODFLOW_URL", "http://env:2")
    monkeypatch.setenv("PRODFLOW_TOKEN", "pf_env")
    assert config.resolve() == config.Config(url="http://env:2", token="pf_env")
    assert config.resolve("http://opt:3", "pf_opt") == config.Config(url="http://opt:3", token="pf_opt")
    assert config.forget() and not path.exists() and not config.forget()


def test_a_broken_config_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2")
    monkeypatch.setenv("PRODFLOW_CONFIG", str(path))
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.read_file()


def test_merge_patch_from_dotted_assignments() -> None:
    from prodflow_cli.commands.cycles import merge_patch_of

    assert merge_patch_of(
        ["setups.l200.pkg_versions.pygama=pygama==2.6.2", "setups.l200.execenv.cmd=null", "a.b=3"]
    ) == {
        "setups": {"l200": {"pkg_versions": {"pygama": "pygama==2.6.2"}, "execenv": {"cmd": None}}},
        "a": {"b": 3},
    }
