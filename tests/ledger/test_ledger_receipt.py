"""Receipts (c2sp.org/tlog-proof@v1): what a volunteer keeps to prove an entry is in the log."""

from __future__ import annotations

import base64

import pytest
from nacl.signing import SigningKey

from potluck.errors import VerificationError
from potluck.tlog.checkpoint import Checkpoint, sign_checkpoint
from potluck.tlog.merkle import MerkleTree, leaf_hash
from potluck.tlog.note import verifier_key_text
from potluck.tlog.receipt import make_receipt, parse_receipt, verify_receipt

pytestmark = pytest.mark.timeout(60)

ORIGIN = "potluck.example/swarm-1"
ENTRIES = [b'{"account":"%02d","credits":%d}' % (i, i * 7) for i in range(21)]

# The example from the spec (C2SP/C2SP tlog-proof.md); its signatures are elided there, so
# only the receipt's own lines can be parsed from it.
SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

— example.com/fancylog hI2DJw[...]1roloI=
"""


@pytest.fixture(scope="module")
def log() -> tuple[SigningKey, str, MerkleTree, str]:
    key = SigningKey.generate()
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e) for e in ENTRIES)
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=len(tree), root_hash=tree.root()), key)
    return key, verifier_key_text(ORIGIN, key.verify_key), tree, note


def receipt_for(log: tuple[SigningKey, str, MerkleTree, str], index: int) -> str:
    _, _, tree, note = log
    return make_receipt(ENTRIES[index], index, tree.inclusion_proof(index), note)


def test_every_entry_round_trips(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, tree, _ = log
    for i, entry in enumerate(ENTRIES):
        index, data, cp = verify_receipt(receipt_for(log, i), vkey, expected_origin=ORIGIN)
        assert (index, data) == (i, entry)
        assert (cp.origin, cp.size, cp.root_hash) == (ORIGIN, len(ENTRIES), tree.root())


def test_format_follows_the_spec(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, _, tree, note = log
    text = receipt_for(log, 5)
    proof_lines = [base64.b64encode(h).decode() for h in tree.inclusion_proof(5)]
    expected = "\n".join(
        ["c2sp.org/tlog-proof@v1", f"extra {base64.b64encode(ENTRIES[5]).decode()}", "index 5", *proof_lines]
    )
    assert text == expected + "\n\n" + note


def test_spec_example_parses() -> None:
    receipt = parse_receipt(SPEC_EXAMPLE)
    assert receipt.index == 73894
    assert len(receipt.proof) == 5
    assert receipt.entry == base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert receipt.checkpoint_note.startswith("example.com/fancylog\n109482\n")


def test_receipt_without_extra_needs_the_entry(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, _, _ = log
    lines = receipt_for(log, 3).split("\n")
    without_extra = "\n".join([lines[0], *lines[2:]])
    with pytest.raises(VerificationError, match="carries no entry"):
        verify_receipt(without_extra, vkey)
    assert verify_receipt(without_extra, vkey, entry=ENTRIES[3])[:2] == (3, ENTRIES[3])
    with pytest.raises(VerificationError, match="computed root"):
        verify_receipt(without_extra, vkey, entry=ENTRIES[4])
    with pytest.raises(VerificationError, match="differs from the entry given"):
        verify_receipt(receipt_for(log, 3), vkey, entry=ENTRIES[4])


def _replace_line(text: str, lineno: int, new: str) -> str:
    lines = text.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


def test_tampered_entry_fails(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, _, _ = log
    forged = b'{"account":"07","credits":999999}'
    text = _replace_line(receipt_for(log, 7), 2, f"extra {base64.b64encode(forged).decode()}")
    with pytest.raises(VerificationError, match="proof does not lead to the checkpoint root.*computed root"):
        verify_receipt(text, vkey)


def test_tampered_index_fails(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, _, _ = log
    with pytest.raises(VerificationError, match="proof does not lead to the checkpoint root"):
        verify_receipt(_replace_line(receipt_for(log, 7), 3, "index 6"), vkey)
    with pytest.raises(VerificationError, match="index 21 out of range for checkpoint of size 21"):
        verify_receipt(_replace_line(receipt_for(log, 7), 3, "index 21"), vkey)


def test_tampered_proof_line_fails(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, tree, _ = log
    text = receipt_for(log, 7)
    for k, h in enumerate(tree.inclusion_proof(7)):
        bad = bytes([h[0] ^ 1]) + h[1:]
        with pytest.raises(VerificationError, match="computed root"):
            verify_receipt(_replace_line(text, 4 + k, base64.b64encode(bad).decode()), vkey)
    # A dropped proof line is a proof of the wrong length.
    lines = text.split("\n")
    with pytest.raises(VerificationError, match="expected 5 proof hashes, got 4"):
        verify_receipt("\n".join(lines[:4] + lines[5:]), vkey)


def test_tampered_checkpoint_fails(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, _, _ = log
    text = receipt_for(log, 7)
    cp_start = text.index("\n\n") + 2
    size_line = cp_start + text[cp_start:].index("\n") + 1
    changed = text[:size_line] + "22" + text[size_line + 2 :]
    with pytest.raises(VerificationError, match="receipt: note signature by key .* does not verify"):
        verify_receipt(changed, vkey)


def test_wrong_key_or_origin_fails(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, vkey, _, _ = log
    other = verifier_key_text(ORIGIN, SigningKey.generate().verify_key)
    with pytest.raises(VerificationError, match="receipt: note has no signature by key"):
        verify_receipt(receipt_for(log, 1), other)
    with pytest.raises(VerificationError, match="expected origin 'elsewhere', got"):
        verify_receipt(receipt_for(log, 1), vkey, expected_origin="elsewhere")


@pytest.mark.parametrize(
    ("lineno", "new", "complaint"),
    [
        (1, "c2sp.org/tlog-proof@v2", "line 1 is 'c2sp.org/tlog-proof@v2'"),
        (2, "extra !!notbase64!!", "line 2 \\(extra\\) is not standard base64"),
        (3, "index 07", "line 3: index '07' is not a decimal"),
        (3, "index -1", "line 3: index '-1' is not a decimal"),
        (3, "idx 7", "line 3 should be 'index N'"),
        (4, "!!notbase64!!", "line 4 \\(proof hash\\) is not standard base64"),
        (5, base64.b64encode(bytes(31)).decode(), "line 5 \\(proof hash\\) is 31 bytes"),
    ],
)
def test_malformed_lines_are_named(
    log: tuple[SigningKey, str, MerkleTree, str], lineno: int, new: str, complaint: str
) -> None:
    _, vkey, _, _ = log
    with pytest.raises(VerificationError, match=f"malformed receipt: {complaint}"):
        verify_receipt(_replace_line(receipt_for(log, 7), lineno, new), vkey)


def test_receipt_without_checkpoint_is_malformed(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    text = receipt_for(log, 0)
    with pytest.raises(VerificationError, match="no checkpoint after the blank line"):
        parse_receipt(text[: text.index("\n\n") + 2])
    with pytest.raises(VerificationError, match="no blank line"):
        parse_receipt(text.replace("\n\n", "\n", 1).split("\n\n")[0])


def test_make_receipt_refuses_a_proof_that_would_not_verify(log: tuple[SigningKey, str, MerkleTree, str]) -> None:
    _, _, tree, note = log
    with pytest.raises(ValueError, match="would not verify"):
        make_receipt(ENTRIES[2], 3, tree.inclusion_proof(3), note)
    with pytest.raises(ValueError, match="would not verify"):
        make_receipt(ENTRIES[3], 3, tree.inclusion_proof(3)[:-1], note)
    with pytest.raises(ValueError, match="would not verify"):
        make_receipt(ENTRIES[3], 30, tree.inclusion_proof(3), note)
