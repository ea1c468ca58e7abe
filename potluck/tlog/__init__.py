"""The transparency log's pure core, shared by the tracker that keeps the log and the auditor who checks it:
the RFC 6962 Merkle tree and proofs, C2SP signed notes, checkpoints and receipts. No database, no network.
"""

from .checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
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
