"""`potluck data prepare`: a community's text in, its own tokenizer and token shards out.

What it writes into the output directory (which must be new or empty: nothing is overwritten):

- `<name>-tokenizer.json`: a byte-level BPE tokenizer (Hugging Face `tokenizers`) trained on the corpus,
  with one special token, END_OF_TEXT, that ends every document;
- `<name>-train-NNN.tokens` and `<name>-eval-NNN.tokens`: token shards (potluck/token_shards.py),
  each at most `shard_bytes`; the held-out (eval) text is the last `eval_share` of every document's
  tokens, so a corpus of one long document is split too, and nothing held out is trained on;
With `tokenizer` (`--tokenizer PATH`, a tokenizer an earlier run wrote), the text is encoded with it and
no tokenizer is trained or written: so a second owner's text joins a swarm's, each shard credited to
its own owner (potluck/data_credit.py), all in one vocabulary.

- `datasets.toml`: one `[[datasets]]` table per file (name, sha256, size, licence, owner, kind =
  train | eval | tokenizer) to append to swarm.toml as it is. Each table's name is its file's, so
  `swarm start --data-dir DIR` finds the files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from potluck.atomic_file import write_file_atomically
from potluck.errors import ConfigError
from potluck.identity import parse_credited
from potluck.token_shards import encode_shard, token_width
from potluck.tracker.data.corpus import find_corpus_files, read_documents

END_OF_TEXT = "<|endoftext|>"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,44}")  # + "-train-000.tokens": a shard name of at most 64
MIN_VOCAB = 257  # the 256 byte symbols and END_OF_TEXT
MAX_VOCAB = 1 << 20
MIN_SHARD_BYTES = 4096
ENCODE_BATCH = 256  # documents encoded at once

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class PrepareConfig:
    name: str
    license: str
    owner: str
    vocab_size: int = 8192
    shard_bytes: int = 16 << 20
    eval_share: float = 0.05
    tokenizer: Path | None = None  # encode with this tokenizer.json instead of training one

    def check(self) -> None:
        if not NAME_RE.fullmatch(self.name):
            raise ConfigError(f"--name: must be up to 45 letters, digits, '_', '.', '-' (got {self.name!r})")
        for flag, value in (("--license", self.license), ("--owner", self.owner)):
            if not value.strip():
                raise ConfigError(f"{flag}: must not be empty (every dataset names its licence and its owner)")
        parse_credited(self.owner, "--owner")  # what swarm.toml takes: an account id, or a one-line name
        if not MIN_VOCAB <= self.vocab_size <= MAX_VOCAB:
            raise ConfigError(f"--vocab-size: must be from {MIN_VOCAB} to {MAX_VOCAB} (got {self.vocab_size})")
        if self.shard_bytes < MIN_SHARD_BYTES:
            raise ConfigError(f"--shard-size: must be at least {MIN_SHARD_BYTES} bytes (got {self.shard_bytes})")
        if not 0.0 <= self.eval_share < 0.5:
            raise ConfigError(f"--eval-share: must be at least 0 and below 0.5 (got {self.eval_share})")


def prepare_dataset(paths: list[Path], out: Path, config: PrepareConfig,
                    progress: Progress | None = None) -> list[dict]:
    """Prepare the corpus under `paths` into `out`; return the dataset tables written to datasets.toml."""
    config.check()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"-o {out}: must be a new or empty directory (nothing is overwritten)")
    files = find_corpus_files(paths)
    report = progress or (lambda stage, done, total: None)

    def documents(stage: str) -> Iterator[str]:
        for number, path in enumerate(files):
            report(stage, number, len(files))
            yield from read_documents(path)
        report(stage, len(files), len(files))

    if config.tokenizer is not None:
        tokenizer, tables = _read_tokenizer(config.tokenizer), []
        out.mkdir(parents=True, exist_ok=True)
    else:
        tokenizer = _train_tokenizer(documents("training the tokenizer on"), config.vocab_size)
        out.mkdir(parents=True, exist_ok=True)
        tokenizer_path = out / f"{config.name}-tokenizer.json"
        write_file_atomically(tokenizer_path, tokenizer.to_str().encode())
        tables = [_table(tokenizer_path, config, "tokenizer")]
    writers = {kind: _ShardWriter(out, f"{config.name}-{kind}", token_width(tokenizer.get_vocab_size()),
                                  config.shard_bytes) for kind in ("train", "eval")}
    end = tokenizer.token_to_id(END_OF_TEXT)
    batch: list[str] = []
    for text in documents("encoding"):
        batch.append(text)
        if len(batch) == ENCODE_BATCH:
            _split(tokenizer, batch, end, config.eval_share, writers)
            batch = []
    _split(tokenizer, batch, end, config.eval_share, writers)
    for kind, writer in writers.items():
        for path in writer.finish():
            tables.append(_table(path, config, kind))
    if not writers["train"].written:
        raise ConfigError(f"{', '.join(map(str, paths))}: the corpus holds no text to train on")
    write_file_atomically(out / "datasets.toml", _datasets_toml(tables, tokenizer.get_vocab_size()).encode())
    return tables


def _read_tokenizer(path: Path):
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--tokenizer {path}: cannot read it ({e.strerror})") from None
    except Exception as e:  # not UTF-8, or not a tokenizer: what tokenizers says, on one line
        raise ConfigError(f"--tokenizer {path}: not a tokenizer.json ({str(e).splitlines()[0][:120]})") from None
    if tokenizer.token_to_id(END_OF_TEXT) is None:
        raise ConfigError(f"--tokenizer {path}: has no {END_OF_TEXT} token (use one `potluck data prepare` wrote)")
    return tokenizer


def _train_tokenizer(documents: Iterator[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    seen = [0]

    def counted() -> Iterator[str]:
        for text in documents:
            seen[0] += 1
            yield text

    tokenizer.train_from_iterator(counted(), trainer=trainer)
    if seen[0] == 0:
        raise ConfigError("corpus: the files hold no text")
    if tokenizer.get_vocab_size() < vocab_size:
        raise ConfigError(f"--vocab-size {vocab_size}: this corpus supports only {tokenizer.get_vocab_size()} "
                          f"tokens; give at most that, or more text")
    return tokenizer


def _split(tokenizer, texts: list[str], end: int, eval_share: float, writers: dict) -> None:
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []:
        ids = np.asarray(encoding.ids, dtype=np.int64)
        cut = len(ids) - int(len(ids) * eval_share)
        writers["train"].add(ids[:cut])
        if cut < len(ids):
            writers["eval"].add(np.append(ids[cut:], end))
        else:
            writers["train"].add(np.asarray([end]))


class _ShardWriter:
    def __init__(self, out: Path, stem: str, width: int, shard_bytes: int):
        self.out, self.stem, self.width = out, stem, width
        self.per_shard = (shard_bytes - 24) // width
        self.pending: list[np.ndarray] = []
        self.count = 0
        self.written: list[Path] = []

    def add(self, tokens: np.ndarray) -> None:
        self.pending.append(tokens)
        self.count += len(tokens)
        while self.count >= self.per_shard:
            joined = np.concatenate(self.pending)
            self._write(joined[:self.per_shard])
            self.pending, self.count = [joined[self.per_shard:]], len(joined) - self.per_shard

    def finish(self) -> list[Path]:
        if self.count:
            self._write(np.concatenate(self.pending))
        return self.written

    def _write(self, tokens: np.ndarray) -> None:
        path = self.out / f"{self.stem}-{len(self.written):03d}.tokens"
        write_file_atomically(path, encode_shard(tokens, self.width))
        self.written.append(path)


def _table(path: Path, config: PrepareConfig, kind: str) -> dict:
    data = path.read_bytes()
    return {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
            "license": config.license, "owner": config.owner, "kind": kind}


def _datasets_toml(tables: list[dict], vocab_size: int) -> str:
    lines = ["# Written by `potluck data prepare`: append these tables to swarm.toml as they are,",
             f"# and train task `lm` with [task.params] vocab_size = {vocab_size}.", ""]
    for table in tables:
        lines.append("[[datasets]]")
        for key, value in table.items():
            # A JSON string without ASCII escapes is a TOML basic string.
            lines.append(f"{key} = {value if isinstance(value, int) else json.dumps(value, ensure_ascii=False)}")
        lines.append("")
    return "\n".join(lines)
