"""The auditor's side: check, without trusting the tracker, that the credit log is complete, unaltered and
correctly computed (`verify_log`), export it (`export_log`), and check receipts offline (`check_receipt`)."""

from .compare import load_compared_checkpoint
from .export import export_log
from .logkey import read_log_key
from .problems import Problem
from .receipt import ReceiptSummary, check_receipt, check_receipt_file
from .replay import Replay, check_entries
from .state import AuditState, StateError, default_state_dir
from .verify import AuditConfig, AuditResult, ProgressBase, verify_log

__all__ = [
    "AuditConfig",
    "AuditResult",
    "AuditState",
    "Problem",
    "ProgressBase",
    "ReceiptSummary",
    "Replay",
    "StateError",
    "check_entries",
    "check_receipt",
    "check_receipt_file",
    "default_state_dir",
    "export_log",
    "load_compared_checkpoint",
    "read_log_key",
    "verify_log",
]
