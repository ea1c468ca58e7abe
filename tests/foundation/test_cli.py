"""The `potluck` command, in-process (typer's CliRunner) and as a real subprocess."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from potluck import __version__
from potluck.cli import app

pytestmark = pytest.mark.timeout(60)

GROUPS = ("identity", "swarm", "node", "tracker", "credits", "audit")
runner = CliRunner()


def potluck(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script, as a user would."""
    script = Path(sys.executable).parent / "potluck"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"potluck {__version__}"


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_help(group):
    result = runner.invoke(app, [group, "--help"], prog_name="potluck")
    assert result.exit_code == 0, result.output
    assert f"potluck {group}" in result.output


def test_bare_command_shows_help():
    result = runner.invoke(app, [])
    assert "Usage" in result.output
    for group in GROUPS:
        assert group in result.output


def test_identity_create_and_show(potluck_home):
    created = runner.invoke(app, ["identity", "create", "--json"])
    assert created.exit_code == 0, created.output
    info = json.loads(created.output)
    assert Path(info["path"]) == potluck_home / "account.key"
    assert stat.S_IMODE((potluck_home / "account.key").stat().st_mode) == 0o600
    shown = runner.invoke(app, ["identity", "show"])
    assert shown.exit_code == 0 and shown.output.strip() == info["account_id"]
    again = runner.invoke(app, ["identity", "create"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_known_errors_are_one_line_with_exit_code_1(potluck_home):
    result = runner.invoke(app, ["identity", "show", "--identity", str(potluck_home / "missing.key")])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {potluck_home / 'missing.key'}: key file does not exist; " \
                                    "create one with `potluck identity create`"


def test_swarm_init_sign_verify(tmp_path):
    assert runner.invoke(app, ["identity", "create"]).exit_code == 0
    toml, manifest = tmp_path / "swarm.toml", tmp_path / "swarm.manifest"
    assert runner.invoke(app, ["swarm", "init", "demo", "-o", str(toml)]).exit_code == 0
    signed = runner.invoke(app, ["swarm", "sign", str(toml), "-o", str(manifest), "--json"])
    assert signed.exit_code == 0, signed.output
    info = json.loads(signed.output)
    verified = runner.invoke(app, ["swarm", "verify", str(manifest), "--lead-key", info["lead"], "--json"])
    assert verified.exit_code == 0 and json.loads(verified.output)["manifest_id"] == info["manifest_id"]
    wrong_lead = runner.invoke(app, ["swarm", "verify", str(manifest), "--lead-key", "00" * 32])
    assert wrong_lead.exit_code == 1 and "expected signer 0000" in wrong_lead.output
    bad_key = runner.invoke(app, ["swarm", "verify", str(manifest), "--lead-key", "xyz"])
    assert bad_key.exit_code == 1 and "--lead-key" in bad_key.output


def test_subprocess_error_is_one_line_and_debug_shows_traceback(tmp_path):
    key = tmp_path / "account.key"
    key.write_text("garbage\n")
    os.chmod(key, 0o600)
    result = potluck("identity", "show", "--identity", str(key))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {key}: corrupt key file (expected first line 'potluck-account-key-v1', got 'garbage')"]
    debug = potluck("identity", "show", "--identity", str(key), env={"POTLUCK_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_subprocess_swarm_sign_reports_bad_config(tmp_path):
    assert potluck("identity", "create").returncode == 0
    toml = tmp_path / "swarm.toml"
    assert potluck("swarm", "init", "demo", "-o", str(toml)).returncode == 0
    toml.write_text(toml.read_text().replace('compression = "none"', 'compression = "gzip"'))
    result = potluck("swarm", "sign", str(toml), "-o", str(tmp_path / "m"))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {toml}: [hivemind] compression: must be one of none, float16, "
                                     "uniform8bit (got 'gzip')")
    assert not (tmp_path / "m").exists()


def test_subprocess_help_and_version():
    assert potluck("--version").stdout.strip() == f"potluck {__version__}"
    result = potluck("--help")
    assert result.returncode == 0 and "identity" in result.stdout
