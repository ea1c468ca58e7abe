"""swarm.toml → signed manifest: deterministic bytes, tamper evidence, and errors that name the field."""

import re
import subprocess
import sys
import textwrap

import pytest

from potluck.errors import ConfigError, VerificationError
from potluck.identity import AccountKey
from potluck.manifest import manifest_id, param_dict, serialize_manifest, sign_manifest, verify_manifest
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template

pytestmark = pytest.mark.timeout(60)

GOOD = textwrap.dedent(
    """
    [swarm]
    name = "kiswahili-lm"
    description = "A Swahili model"
    origin = "potluck.swarm/kiswahili-lm/00ff"
    seed = "%s"

    [community]
    language = "sw"
    region = "East Africa"

    [task]
    name = "synthetic"
    [task.params]
    hidden = 32

    [[datasets]]
    name = "news-000"
    sha256 = "%s"
    size_bytes = 1024
    license = "CC-BY-4.0"
    owner = "Example Archive"

    [hivemind]
    run_id = "kiswahili"
    target_batch_size = 128
    matchmaking_time = 2.5
    averaging_timeout = 20
    compression = "float16"
    learning_rate = 0.003

    [network]
    bootstrap_peers = ["/ip4/127.0.0.1/tcp/4000/p2p/QmExample"]
    tracker = "127.0.0.1:50051"

    [credits]
    version = 1
    flops_per_credit = 1_000_000_000_000_000
    sampling_rate = 1.0
    new_account_checks = 5
    escrow_depth = 3
    """
) % ("ab" * 32, "cd" * 32)

LEAD = AccountKey.generate()


def test_template_loads_as_is_and_trains_synthetic():
    manifest = parse_swarm_config(render_swarm_template("demo"))
    assert manifest.task.name == "synthetic" and manifest.name == "demo"
    assert len(manifest.swarm_seed) == 32
    # Each init draws a fresh origin and seed: two swarms never share them.
    assert parse_swarm_config(render_swarm_template("demo")).origin != manifest.origin


def test_round_trip_keeps_every_field():
    manifest = parse_swarm_config(GOOD)
    signed = verify_manifest(sign_manifest(manifest, LEAD), lead_key=LEAD.public_key)
    m = signed.manifest
    assert m == manifest
    assert (m.name, m.origin, m.community.language, m.hivemind.compression) == (
        "kiswahili-lm", "potluck.swarm/kiswahili-lm/00ff", "sw", "float16")
    assert m.hivemind.averaging_timeout == 20.0 and m.credit_policy.escrow_depth == 3
    assert m.datasets[0].sha256 == "cd" * 32 and m.swarm_seed == bytes.fromhex("ab" * 32)
    assert param_dict(m.task)["hidden"] == 32  # given
    assert len(param_dict(m.task)) > 1  # defaults are written out, so every peer agrees on them
    assert signed.manifest_id == manifest_id(serialize_manifest(manifest))


def test_identical_bytes_across_runs_and_processes(tmp_path):
    source = tmp_path / "swarm.toml"
    source.write_text(GOOD)
    here = sign_manifest(parse_swarm_config(GOOD), LEAD)
    assert here == sign_manifest(parse_swarm_config(GOOD), LEAD)
    program = textwrap.dedent(
        f"""
        import sys
        from nacl.signing import SigningKey
        from potluck.manifest import sign_manifest
        from potluck.identity import AccountKey
        from potluck.tracker.swarm.swarm_config import parse_swarm_config
        key = AccountKey(SigningKey(bytes.fromhex("{bytes(LEAD.signing_key).hex()}")))
        sys.stdout.buffer.write(sign_manifest(parse_swarm_config(open(sys.argv[1]).read()), key))
        """
    )
    for hash_seed in ("0", "12345"):  # different dict/set orders in each process
        out = subprocess.run([sys.executable, "-c", program, str(source)], capture_output=True, check=True,
                             timeout=60, env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"}).stdout
        assert out == here


def test_every_changed_byte_is_detected():
    signed = sign_manifest(parse_swarm_config(GOOD), LEAD)
    for position in range(0, len(signed), 7):
        tampered = bytearray(signed)
        tampered[position] ^= 0x01
        with pytest.raises(VerificationError):
            verify_manifest(bytes(tampered), lead_key=LEAD.public_key)


def test_another_signer_is_rejected():
    other = AccountKey.generate()
    forged = sign_manifest(parse_swarm_config(GOOD), other)
    with pytest.raises(VerificationError, match=f"expected signer {LEAD.account_id}, got {other.account_id}"):
        verify_manifest(forged, lead_key=LEAD.public_key)


def test_envelope_origin_must_match_the_manifest():
    envelope = SignedEnvelope.FromString(sign_manifest(parse_swarm_config(GOOD), LEAD))
    from potluck.signing import PURPOSE_MANIFEST, seal

    resealed = seal(envelope.payload, purpose=PURPOSE_MANIFEST, origin="another-origin",
                    signing_key=LEAD.signing_key)
    with pytest.raises(VerificationError, match="expected manifest origin 'another-origin'"):
        verify_manifest(resealed, lead_key=LEAD.public_key)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (what to change, the section and key the error must name, a piece of the explanation)
INVALID = [
    (('name = "kiswahili-lm"', 'name = "has space"'), "[swarm] name:", "must be letters"),
    (('origin = "potluck.swarm/kiswahili-lm/00ff"', 'origin = "a+b"'), "[swarm] origin:", "got 'a+b'"),
    (('seed = "' + "ab" * 32, 'seed = "' + "ab" * 31), "[swarm] seed:", "64 lowercase hex"),
    (('language = "sw"', "language = 5"), "[community] language:", "must be a string (got 5)"),
    (('name = "synthetic"', 'name = "imagenet"'), "[task] name:", "unknown task"),
    (("hidden = 32", 'hidden = "wide"'), "[task.params] hidden:", "must be an integer"),
    (("hidden = 32", "depth_of_field = 1"), "[task.params] depth_of_field:", "unknown parameter"),
    (('sha256 = "' + "cd" * 32, 'sha256 = "' + "CD" * 32), "[datasets.0] sha256:", "lowercase hex"),
    (("size_bytes = 1024", "size_bytes = 0"), "[datasets.0] size_bytes:", "at least 1 (got 0)"),
    (('license = "CC-BY-4.0"', 'license = ""'), "[datasets.0] license:", "must not be empty"),
    (("run_id = \"kiswahili\"", "run_id = \"\""), "[hivemind] run_id:", "got ''"),
    (("target_batch_size = 128", "target_batch_size = 12.5"), "[hivemind] target_batch_size:", "an integer"),
    (("matchmaking_time = 2.5", "matchmaking_time = true"), "[hivemind] matchmaking_time:", "a number"),
    (("averaging_timeout = 20", "averaging_timeout = 2"), "[hivemind] averaging_timeout:", "longer than"),
    (('compression = "float16"', 'compression = "zip"'), "[hivemind] compression:", "one of none"),
    (("learning_rate = 0.003", "learning_rate = 0"), "[hivemind] learning_rate:", "between 1e-07 and 10.0"),
    (('["/ip4/127.0.0.1/tcp/4000/p2p/QmExample"]', '["localhost:4000"]'), "[network] bootstrap_peers:",
     "multiaddr"),
    (('tracker = "127.0.0.1:50051"', 'tracker = "127.0.0.1:99999"'), "[network] tracker:", "port from 1"),
    (("flops_per_credit = 1_000_000_000_000_000", "flops_per_credit = -1"), "[credits] flops_per_credit:",
     "got -1"),
    (("sampling_rate = 1.0", "sampling_rate = 1.5"), "[credits] sampling_rate:", "between 0.001 and 1.0"),
    (("escrow_depth = 3", "escrow_depth = \"3\""), "[credits] escrow_depth:", "an integer"),
    (("escrow_depth = 3", "escrow_depth = 3\nsurprise = 1"), "[credits] surprise:", "unknown key"),
    # Below 1 + 1 / (sampling_rate x 0.95) cheating pays in expectation (tracker/credit/deterrence.py).
    (("escrow_depth = 3", "escrow_depth = 2"), "[credits] escrow_depth:", "must be at least 3 at sampling_rate 1"),
    (("sampling_rate = 1.0", "sampling_rate = 0.1"), "[credits] escrow_depth:", "must be at least 12"),
    (("[credits]", "[credit]"), "[credit]:", "unknown section"),
    (("[swarm]\n", "[swarm]\nname2 = 1\n"), "[swarm] name2:", "unknown key"),
]


@pytest.mark.parametrize(("change", "where", "why"), INVALID, ids=[case[1] for case in INVALID])
def test_each_invalid_field_is_named(change, where, why):
    with pytest.raises(ConfigError) as err:
        parse_swarm_config(_replace(GOOD, *change), source="swarm.toml")
    message = str(err.value)
    assert message.startswith(f"swarm.toml: {where}"), message
    assert why in message and "\n" not in message


def test_missing_sections_and_bad_toml_are_named():
    with pytest.raises(ConfigError, match=re.escape("swarm.toml: [hivemind] run_id: required key is missing")):
        parse_swarm_config(_replace(GOOD, 'run_id = "kiswahili"\n', ""))
    with pytest.raises(ConfigError, match=re.escape("swarm.toml: [hivemind]: required section is missing")):
        parse_swarm_config(GOOD[: GOOD.index("[hivemind]")] + GOOD[GOOD.index("[network]"):])
    with pytest.raises(ConfigError, match="swarm.toml: not valid TOML"):
        parse_swarm_config(GOOD + "\n[[[")
