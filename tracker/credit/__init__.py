"""Credit: every account's state (one `AccountState` each, folded from the ledger by `Accounts`), and the
`CreditPolicy` that turns verdicts into vests, strikes, forfeits and bans."""

from .account_state import AccountState
from .accounts import Accounts
from .credit_policy import STRIKES_TO_FORFEIT, CreditPolicy
from .verdict import Outcome, Verdict

__all__ = ["STRIKES_TO_FORFEIT", "AccountState", "Accounts", "CreditPolicy", "Outcome", "Verdict"]
