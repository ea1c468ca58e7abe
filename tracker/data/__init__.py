"""The lead's data tools: a community's text turned into a tokenizer and token shards (`potluck data prepare`)."""

from .corpus import find_corpus_files, read_documents
from .prepare import PrepareConfig, prepare_dataset

__all__ = ["PrepareConfig", "find_corpus_files", "prepare_dataset", "read_documents"]
