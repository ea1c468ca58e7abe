"""`potluck data prepare`: a community's text (here Cervantes, in Spanish: tests/tracker/corpus_es)
becomes its own tokenizer, token shards and the [[datasets]] tables of swarm.toml; bad input is one
line naming the file and the fault, exit code 1, and nothing half written."""

from __future__ import annotations

import hashlib
import json
import tomllib
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

from potluck.cli import app
from potluck.datasets import find_shard
from potluck.token_shards import decode_shard
from potluck.tracker.data.prepare import END_OF_TEXT
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template

pytestmark = pytest.mark.timeout(120)
CORPUS = Path(__file__).parent / "corpus_es"
LICENSE, OWNER = "LicenseRef-public-domain", "Biblioteca de ejemplo"


def prepare(*args: str, cwd: Path):
    """The command line, run in this process (typer's runner): its exit code, stdout and stderr."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        result = CliRunner().invoke(app, ["data", "prepare", *args])
    result.returncode = result.exit_code
    return result


def test_the_text_becomes_a_tokenizer_shards_and_dataset_tables(tmp_path):
    done = prepare(str(CORPUS), "-o", "out", "--name", "quijote", "--license", LICENSE, "--owner", OWNER,
                   "--vocab-size", "400", "--shard-size", "4K", "--eval-share", "0.1",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    tables = tomllib.loads((out / "datasets.toml").read_text())["datasets"]
    assert [t["kind"] for t in tables] == ["tokenizer", "train", "eval"]
    for table in tables:
        data = (out / table["name"]).read_bytes()
        assert (table["sha256"], table["size_bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
        assert (table["license"], table["owner"]) == (LICENSE, OWNER)
    tokenizer = Tokenizer.from_file(str(out / "quijote-tokenizer.json"))
    assert tokenizer.get_vocab_size() == 400
    assert "vocab_size = 400" in (out / "datasets.toml").read_text()  # what task `lm` needs
    train, held_out = (decode_shard((out / t["name"]).read_bytes()) for t in tables[1:])
    assert train.dtype.itemsize == 2  # a vocabulary of 400 fits uint16
    text = unicodedata.normalize("NFC", (CORPUS / "quijote-1.txt").read_text())
    # The held-out tokens are the end of the document, and train and eval together are all of it.
    whole = tokenizer.decode([*train.tolist(), *held_out.tolist()], skip_special_tokens=False)
    assert whole == text + END_OF_TEXT
    assert 0.05 < len(held_out) / (len(train) + len(held_out)) < 0.15
    assert len(text.encode()) / (len(train) + len(held_out)) > 1.5  # BPE on this text: fewer tokens than bytes


def test_the_tables_go_into_swarm_toml_as_they_are(tmp_path):
    assert prepare(str(CORPUS), "-o", "out", "--name", "q", "--license", LICENSE, "--owner", OWNER,
                   "--vocab-size", "300", cwd=tmp_path).returncode == 0
    config = render_swarm_template("q-swarm") + "\n" + (tmp_path / "out" / "datasets.toml").read_text()
    manifest = parse_swarm_config(config)
    assert [(d.kind, d.owner) for d in manifest.datasets] == [("tokenizer", OWNER), ("train", OWNER), ("eval", OWNER)]
    assert all(find_shard(d, [tmp_path / "out"]) for d in manifest.datasets)  # `swarm start --data-dir out` serves them


def test_documents_are_normalised_to_nfc_and_jsonl_is_read(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "cafe\u0301 " * 50}) + "\n\n"
                                      + json.dumps({"text": "niño " * 50}) + "\n")
    assert prepare("c.jsonl", "-o", "out", "--name", "c", "--license", "CC0-1.0", "--owner", "o",
                   "--vocab-size", "260", "--eval-share", "0", cwd=tmp_path).returncode == 0
    tokenizer = Tokenizer.from_file(str(tmp_path / "out" / "c-tokenizer.json"))
    tokens = decode_shard((tmp_path / "out" / "c-train-000.tokens").read_bytes()).tolist()
    assert tokenizer.decode(tokens, skip_special_tokens=False) == ("café " * 50 + END_OF_TEXT
                                                                   + "niño " * 50 + END_OF_TEXT)


def test_a_second_owners_text_is_encoded_with_the_first_runs_tokenizer(tmp_path):
    assert prepare(str(CORPUS), "-o", "ana", "--name", "ana", "--license", LICENSE, "--owner", "Ana",
                   "--vocab-size", "300", cwd=tmp_path).returncode == 0
    (tmp_path / "bea.txt").write_text("Otra historia, de otra dueña. " * 40)
    done = prepare("bea.txt", "-o", "bea", "--name", "bea", "--license", "CC-BY-4.0", "--owner", "Bea",
                   "--tokenizer", "ana/ana-tokenizer.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tables = tomllib.loads((tmp_path / "bea" / "datasets.toml").read_text())["datasets"]
    assert [(t["kind"], t["owner"]) for t in tables] == [("train", "Bea"), ("eval", "Bea")]  # no second tokenizer
    tokenizer = Tokenizer.from_file(str(tmp_path / "ana" / "ana-tokenizer.json"))
    tokens = decode_shard((tmp_path / "bea" / "bea-train-000.tokens").read_bytes()).tolist()
    assert tokenizer.decode(tokens).startswith("Otra historia, de otra dueña.")
    both = render_swarm_template("s") + "".join("\n" + (tmp_path / d / "datasets.toml").read_text()
                                                for d in ("ana", "bea"))
    assert sorted({d.owner for d in parse_swarm_config(both).datasets}) == ["Ana", "Bea"]


@pytest.mark.parametrize(("setup", "args", "error"), [
    (lambda d: (d / "bad.txt").write_bytes("válido".encode() + b"\xff rest"), ["bad.txt"],
     "bad.txt: not UTF-8 at byte 7"),
    (lambda d: (d / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": "no"}\n'), ["bad.jsonl"],
     'bad.jsonl:2: must be a JSON object with a string "text" field'),
    (lambda d: (d / "empty.txt").write_text("  \n"), ["empty.txt"], "corpus: the files hold no text"),
    (lambda d: (d / "notes.md").write_text("x"), ["notes.md"], "notes.md: not a corpus file"),
    (lambda d: None, ["missing"], "missing: no such file or directory"),
    (lambda d: None, [str(CORPUS), "--vocab-size", "100000"], "--vocab-size 100000: this corpus supports only"),
    (lambda d: None, [str(CORPUS), "--license", " "], "--license: must not be empty"),
    (lambda d: None, [str(CORPUS), "--owner", ""], "--owner: must not be empty"),
    (lambda d: None, [str(CORPUS), "--shard-size", "lots"], "--shard-size: must be a size such as 16M"),
    (lambda d: (d / "out").mkdir() or (d / "out" / "keep.txt").write_text("mine"), [str(CORPUS)],
     "-o out: must be a new or empty directory"),
    (lambda d: (d / "t.json").write_text("{}"), [str(CORPUS), "--tokenizer", "t.json"],
     "--tokenizer t.json: not a tokenizer.json"),
    (lambda d: None, [str(CORPUS), "--tokenizer", "none.json"], "--tokenizer none.json: cannot read it"),
    (lambda d: None, [str(CORPUS), "--owner", "two\nlines"], "--owner: must be an account id (64 hex digits) or"),
])
def test_bad_input_is_one_line_naming_the_file_and_the_fault(tmp_path, setup, args, error):
    setup(tmp_path)
    flags = {"--name": "c", "--license": "CC0-1.0", "--owner": "o", "--vocab-size": "300"}
    for flag in [a for a in args if a.startswith("--")]:
        flags.pop(flag, None)
    done = prepare(*args, "-o", "out", *[x for pair in flags.items() for x in pair], cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and error in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    if (tmp_path / "out" / "keep.txt").exists():
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep.txt"]


def test_a_shard_whose_size_is_not_the_manifests_is_refused_by_swarm_start_and_by_lm(tmp_path):
    """Owners' data credit is computed from size_bytes and vocab_size (potluck/data_credit.py): a shard that
    disagrees with them would split credit over other windows than the nodes draw from."""
    from potluck.errors import ConfigError
    from potluck.node.tasks import get_task
    from potluck.token_shards import encode_shard
    from potluck.tracker.swarm.swarm_start import shards_in

    assert prepare(str(CORPUS), "-o", "out", "--name", "q", "--license", LICENSE, "--owner", OWNER,
                   "--vocab-size", "300", cwd=tmp_path).returncode == 0
    text = (tmp_path / "out" / "datasets.toml").read_text()
    train = next(d for d in tomllib.loads(text)["datasets"] if d["kind"] == "train")
    manifest = parse_swarm_config(render_swarm_template("s") + "\n" + text.replace(
        f"size_bytes = {train['size_bytes']}", f"size_bytes = {train['size_bytes'] + 2}"))
    with pytest.raises(ConfigError, match=f"holds {train['size_bytes']} bytes, swarm.toml says size_bytes = "
                                          f"{train['size_bytes'] + 2}"):
        shards_in([tmp_path / "out"], manifest)
    wide = encode_shard(decode_shard((tmp_path / "out" / train["name"]).read_bytes()), 4)
    with pytest.raises(ConfigError, match="4-byte tokens, but a vocabulary of 300 is stored in 2"):
        get_task("lm", {"vocab_size": 300}, shards=[(hashlib.sha256(wide).hexdigest(), wide)])
