"""The hotline command on bad input: clear errors, non-zero exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BROKEN = """\
name: broken
version: 1
prompts:
  hello: {text: {zh: 你好}}
desks:
  general: {name: 综合}
start: {menu: main}
menus:
  main:
    prompt: hello
    keys:
      1: {queue: nowhere}
"""


def hotline(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_check_dialplan_names_file_and_line(tmp_path):
    plan = tmp_path / "broken.yaml"
    plan.write_text(BROKEN, encoding="utf-8")
    done = hotline("check-dialplan", str(plan))
    assert done.returncode == 1
    assert f"{plan}:12:" in done.stdout + done.stderr
    assert "nowhere" in done.stdout + done.stderr


def test_check_dialplan_accepts_the_default_plan():
    done = hotline("check-dialplan", "dialplans/12345.yaml")
    assert done.returncode == 0, done.stderr


def test_serve_refuses_to_start_on_a_broken_dialplan(tmp_path):
    plan = tmp_path / "broken.yaml"
    plan.write_text(BROKEN, encoding="utf-8")
    config = tmp_path / "hotline.toml"
    config.write_text(f'[ami]\nport = 1\n[dialplan]\npath = "{plan}"\n')
    done = hotline(
        "--config", str(config), "serve",
        env={"YHT_AMI_SECRET": "x", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"{plan}:12:" in done.stderr


def test_a_secret_written_into_the_configuration_is_refused(tmp_path):
    config = tmp_path / "hotline.toml"
    config.write_text('[ami]\nsecret = "plain"\n')
    done = hotline("--config", str(config), "serve", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "must not be written in the configuration" in done.stderr


def test_simulate_prints_the_path_of_a_call():
    done = hotline("simulate", "dialplans/12345.yaml", "--keys", "2")
    assert done.returncode == 0, done.stderr
    assert "psych" in done.stdout


def test_a_misspelt_key_in_a_section_is_refused_with_the_known_ones(tmp_path):
    config = tmp_path / "hotline.toml"
    config.write_text('[store]\npth = "x.db"\n[mqtt]\nport = 99999\n')
    done = hotline(
        "--config",
        str(config),
        "serve",
        env={"YHT_AMI_SECRET": "x", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "[store] unknown key pth; known: path" in done.stderr
