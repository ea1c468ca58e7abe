"""Data owners' credit (potluck/data_credit.py): the split of a report's samples by owner is the data the
node really trains on, the arithmetic is exact, and the credit shares its grant's fate in the fold."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from potluck.data_credit import DataSplit
from potluck.entries import PPM, Balances, DataCredit, Forfeit, LedgerEntry, Vest, check_grant_arithmetic, grant_entry
from potluck.errors import ConfigError, VerificationError
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.token_shards import encode_shard
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template

pytestmark = pytest.mark.timeout(120)
ORIGIN = "example.org/data-credit"
ALICE, ANA, BEA = "a" * 64, "Archivo de Ana", "b" * 64


def manifest_for(task: str, params: str, shards: list[tuple[bytes, str]], share: str = "0.1"):
    datasets = "".join(
        f'\n[[datasets]]\nname = "s{i}"\nsha256 = "{hashlib.sha256(data).hexdigest()}"\nsize_bytes = {len(data)}\n'
        f'license = "CC0-1.0"\nowner = "{owner}"\n' for i, (data, owner) in enumerate(shards))
    text = render_swarm_template("x").replace('name = "synthetic"', f'name = "{task}"', 1)
    text = text.replace("# Task parameters; anything left out takes the task's default.", params)
    text = re.sub(r"data_share = [0-9.]+", f"data_share = {share}", text)
    text = re.sub(r'seed = "[0-9a-f]+"', f'seed = "{"5e" * 32}"', text)  # the same draw on every run
    return parse_swarm_config(text + datasets)


def report(account: str, epoch: int, steps: int, batch: int) -> ContributionReport:
    return ContributionReport(account_id=account, epoch=epoch, batch_size=batch, losses=[1.0] * steps,
                              num_samples=steps * batch)


@pytest.mark.parametrize("task", ["charlm", "lm"])
def test_each_owner_is_paid_its_share_of_the_windows_the_node_draws_from(task):
    rng = np.random.default_rng(0)
    if task == "lm":  # three token shards of different lengths, two owners
        datas = [encode_shard(rng.integers(0, 300, size), 2) for size in (400, 300, 1500)]
        params = "vocab_size = 300\nhidden_size = 16\nnum_layers = 1\nnum_heads = 2\nseq_len = 32"
    else:
        datas = [bytes(rng.integers(32, 127, size, dtype=np.uint8)) for size in (400, 300, 1500)]
        params = "d_model = 16\nn_layers = 1\nn_heads = 2\nseq_len = 32"
    owners = [ANA, BEA, ANA]
    manifest = manifest_for(task, params, list(zip(datas, owners, strict=True)))
    split = DataSplit(manifest)
    node_task = get_task(task, {"seq_len": 32, **({"vocab_size": 300} if task == "lm" else {})},
                         shards=[(hashlib.sha256(d).hexdigest(), d) for d in datas])
    owner_of = {hashlib.sha256(d).hexdigest(): o for d, o in zip(datas, owners, strict=True)}
    # The windows the node's task draws from, shard by shard (in sha256 order), are the split's, owner by owner.
    starts = node_task._windows.starts
    expected = {ANA: 0, BEA: 0}
    for shard, sha in enumerate(sorted(owner_of)):
        expected[owner_of[sha]] += starts[shard + 1] - starts[shard]
    assert dict(split.windows) == expected and split.total == node_task._windows.count
    credits = split.credits(grant_flops=10**9, flops_per_credit=10)
    assert [(c.owner, c.windows, c.flops) for c in credits] == [
        (owner, expected[owner], 10**9 // 10 * expected[owner] // split.total) for owner in sorted(expected)]


def test_no_text_or_a_share_of_0_credits_no_owner():
    data = b"x" * 500
    assert not DataSplit(manifest_for("charlm", "seq_len = 32", [(data, ANA)], share="0")).total
    assert not DataSplit(manifest_for("synthetic", "", [])).total
    assert DataSplit(manifest_for("charlm", "seq_len = 32", [(data, ANA)])).credits(1000, 1) == [
        DataCredit(owner=ANA, windows=500 - 32, flops=100, credits="100")]


@pytest.mark.parametrize("share, error", [
    ("1.5", "[credits] data_share: must be between 0.0 and 1.0"),
    ("0.1234567", "[credits] data_share: must have at most 6 decimal places"),
    ('"0.1"', "[credits] data_share: must be a number"),
])
def test_a_bad_data_share_is_named(share, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        manifest_for("charlm", "seq_len = 32", [(b"x" * 500, ANA)], share=share)


def test_an_owner_id_is_lowercased_and_a_bad_owner_is_named():
    manifest = manifest_for("charlm", "seq_len = 32", [(b"x" * 500, "C" * 64)])
    assert manifest.datasets[0].owner == "c" * 64 and manifest.credit_policy.data_share_ppm == PPM // 10
    with pytest.raises(ConfigError, match=re.escape("[datasets.0] owner: must be an account id or a name")):
        manifest_for("charlm", "seq_len = 32", [(b"x" * 500, " leading space")])


def grant(num_samples: int, data: list[tuple[str, int]], share: int = PPM // 10, total: int = 10) -> LedgerEntry:
    """A grant of num_samples x 100 FLOPs; `data` gives each owner's windows, of `total`."""
    flops = num_samples * 100
    return grant_entry(origin=ORIGIN, report=b"r%d" % num_samples, account_id=ALICE, num_samples=num_samples,
                       flops_per_sample=100, policy_version=1, flops_per_credit=1, logged_at_ms=0,
                       data_share_ppm=share, data_windows=total,
                       data=[DataCredit(owner=o, windows=w, flops=flops * share * w // (PPM * total),
                                        credits=str(flops * share * w // (PPM * total))) for o, w in data])


def test_data_credit_follows_its_grant_into_escrow_vesting_and_forfeit():
    balances = Balances()
    entries = [grant(10, [(ANA, 6), (BEA, 4)]), grant(20, [(ANA, 10)]), grant(30, [(BEA, 10)]),
               LedgerEntry(origin=ORIGIN, vest=Vest(account_id=ALICE, grant_indices=[0, 1], flops=3000)),
               LedgerEntry(origin=ORIGIN, forfeit=Forfeit(account_id=ALICE, grant_indices=[2], flops=3000,
                                                          clawed_back_indices=[1], clawed_back_flops=2000))]
    for index, entry in enumerate(entries[:3]):
        balances.apply(index, entry)
    ana, bea = balances.accounts[ANA], balances.accounts[BEA]
    assert (ana.data_granted_flops, ana.data_escrow_flops, ana.data_vested_flops) == (260, 260, 0)
    assert (bea.data_granted_flops, bea.data_escrow_flops) == (340, 340)
    assert ana.granted_flops == 0 and balances.accounts[ALICE].data_granted_flops == 0  # two columns apart
    balances.apply(3, entries[3])
    assert (ana.data_escrow_flops, ana.data_vested_flops, bea.data_escrow_flops, bea.data_vested_flops) == \
        (0, 260, 300, 40)
    balances.apply(4, entries[4])  # grant 2 forfeited from escrow, grant 1 clawed back from vested
    assert (ana.data_vested_flops, ana.data_forfeited_flops) == (60, 200)
    assert (bea.data_escrow_flops, bea.data_vested_flops, bea.data_forfeited_flops) == (0, 40, 300)


@pytest.mark.parametrize("data, share, error", [
    ([(ANA, 6)], 0, "credits data owners at a data share of 0"),
    ([(BEA, 4), (ANA, 6)], PPM // 10, "distinct, named owners, in owner order"),
    ([(ANA, 6), (ANA, 4)], PPM // 10, "distinct, named owners, in owner order"),
    ([(ANA, 6), (BEA, 5)], PPM // 10, "data credits for 11 windows, of 10 in all"),
    ([(ANA, 6)], PPM + 1, "a data share of at most 1000000 ppm"),
])
def test_data_credit_arithmetic_is_checked(data, share, error):
    with pytest.raises(VerificationError, match=re.escape(error)):
        check_grant_arithmetic(grant(10, data, share).grant, 0)
    entry = grant(10, [(ANA, 6)])
    entry.grant.data[0].flops += 1  # a tracker paying an owner more than its samples earned
    with pytest.raises(VerificationError, match="expected data flops 60"):
        check_grant_arithmetic(entry.grant, 0)


def test_the_largest_grant_with_every_owner_fits_a_ledger_entry():
    """Every grant names every owner: with the most owners, the longest names and the largest report,
    the entry still fits (one that did not would fail the ledger writer's whole batch)."""
    from potluck.data_credit import MAX_OWNERS
    from potluck.identity import MAX_OWNER_BYTES
    from potluck.proto.wire import MAX_ENTRY_BYTES, MAX_REPORT_BYTES

    owners = [f"{i:02d}" + "ñ" * ((MAX_OWNER_BYTES - 2) // 2) for i in range(MAX_OWNERS)]
    big = 2**64 - 1
    entry = grant_entry(origin="o" * 200, report=b"r" * MAX_REPORT_BYTES, account_id=ALICE, num_samples=big // 10**6,
                        flops_per_sample=10**6, policy_version=2**32 - 1, flops_per_credit=1, logged_at_ms=big,
                        data_share_ppm=PPM, data_windows=big,
                        data=[DataCredit(owner=o, windows=big // MAX_OWNERS, flops=big, credits=f"{big}.{'9' * 12}")
                              for o in owners])
    assert len(entry.SerializeToString()) <= MAX_ENTRY_BYTES


@pytest.mark.parametrize("owner", ["Ana\u202e", "\u200bAna", "Ana ", "A" * 121, "A\u0301na"])
def test_an_owner_name_that_could_pass_for_another_is_refused(owner):
    with pytest.raises(ConfigError, match="owner: must be an account id or a name"):
        manifest_for("charlm", "seq_len = 32", [(b"x" * 500, owner)])


def test_too_many_owners_or_a_nan_share_is_refused():
    shards = [(bytes([i]) * 500, f"owner {i}") for i in range(17)]
    with pytest.raises(ConfigError, match="the training shards have 17 owners; at most 16"):
        manifest_for("charlm", "seq_len = 32", shards)
    with pytest.raises(ConfigError, match=re.escape("[credits] data_share: must be between 0.0 and 1.0")):
        manifest_for("charlm", "seq_len = 32", shards[:1], share="nan")
