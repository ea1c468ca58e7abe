"""The lead signs the price of a sample (task.flops_per_sample); a tracker whose task prices it
otherwise refuses to start, so grants and the auditor's check use the same, signed price."""

import pytest
from trackerkit import RunningTracker

from potluck.errors import ConfigError
from potluck.identity import AccountKey
from potluck.manifest import sign_manifest, verify_manifest
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template

pytestmark = pytest.mark.timeout(60)


def test_swarm_sign_pins_the_price_and_a_tracker_with_another_refuses_to_start(tmp_path):
    manifest = parse_swarm_config(render_swarm_template("test"))
    assert manifest.task.flops_per_sample > 0
    manifest.task.flops_per_sample += 1  # what another build of the task would compute
    signed = verify_manifest(sign_manifest(manifest, AccountKey.generate()))
    with pytest.raises(ConfigError, match="the manifest prices a sample at"):
        RunningTracker(tmp_path, signed)
