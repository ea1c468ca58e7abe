"""The ledger. The names exported here are its pure core, with no database or network:
the RFC 6962 Merkle tree and proofs, C2SP signed notes, checkpoints and receipts, and the log key.
"""

from .checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from .logkey import load_or_create_log_key
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from .note import (
    NoteSignature,
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signer_key_text,
    split_note,
    verifier_key_text,
)
from .receipt import Receipt, make_receipt, parse_receipt, verify_receipt

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "MerkleTree",
    "NoteSignature",
    "Receipt",
    "key_id",
    "leaf_hash",
    "load_or_create_log_key",
    "make_receipt",
    "node_hash",
    "open_note",
    "parse_receipt",
    "parse_signer_key",
    "parse_verifier_key",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "sign_checkpoint",
    "sign_note",
    "signer_key_text",
    "split_note",
    "verifier_key_text",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_receipt",
]
