"""A community's text, read from the files a lead names: `.txt`, `.jsonl` (a "text" field per line)
and `.parquet` (a "text" column, where pyarrow is installed), each document normalised to Unicode NFC.

Every fault is one line naming the file and what is wrong with it: text that is not UTF-8 (with the
byte offset), a JSON line that is not an object with a string "text" (with the line number).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from potluck.errors import ConfigError

SUFFIXES = (".txt", ".jsonl", ".parquet")


def find_corpus_files(paths: list[Path]) -> list[Path]:
    """The files named, and those under the directories named (by suffix, sorted), each once."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise ConfigError(f"{path}: not a corpus file (potluck reads {', '.join(SUFFIXES)})")
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such file or directory")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ConfigError(f"{', '.join(map(str, paths))}: no {', '.join(SUFFIXES)} files there")
    return unique


def read_documents(path: Path) -> Iterator[str]:
    """The documents of one corpus file, NFC-normalised; empty ones are skipped."""
    suffix = path.suffix.lower()
    texts = _txt(path) if suffix == ".txt" else _jsonl(path) if suffix == ".jsonl" else _parquet(path)
    for text in texts:
        text = unicodedata.normalize("NFC", text)
        if text.strip():
            yield text


def _utf8(data: bytes, path: Path, where: str = "") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 at byte {e.start}{where}") from None


def _txt(path: Path) -> Iterator[str]:
    yield _utf8(path.read_bytes(), path)


def _jsonl(path: Path) -> Iterator[str]:
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(f"{path}: not UTF-8 at byte {offset + e.start} (line {number})") from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{number}: not JSON ({e.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ConfigError(f"{path}:{number}: must be a JSON object with a string \"text\" field")
            yield record["text"]


def _parquet(path: Path) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{path}: reading .parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as e:
        raise ConfigError(f"{path}: not a parquet file ({e})") from None
    if "text" not in table.schema_arrow.names:
        raise ConfigError(f"{path}: has no \"text\" column (columns: {', '.join(table.schema_arrow.names)})")
    for batch in table.iter_batches(columns=["text"]):
        for number, value in enumerate(batch.column(0).to_pylist()):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{path}: row {number} of a batch has a \"text\" that is not a string")
            if value:
                yield value
