"""What the volunteer sees: one live status line (rich), or one JSON log line per change (--json-logs)."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.live import Live
from rich.text import Text

logger = logging.getLogger("potluck.node.status_display")


@dataclass
class NodeStatus:
    state: str = "starting"
    epoch: int = 0
    local_samples_per_second: float = 0.0
    swarm_samples_per_second: float = 0.0
    loss: float | None = None
    num_peers: int = 0
    queued: int = 0
    acked: int = 0
    rejected: int = 0
    credits_pending: str = "0"
    credits_vested: str = "0"
    averaging: str = ""  # set while averaging keeps failing: how, and what to do


class StatusDisplay:
    def __init__(self, *, json_logs: bool):
        self.status = NodeStatus()
        self.json_logs = json_logs
        self.lock = threading.Lock()
        self.live: Live | None = None
        console = Console(stderr=True)
        if not json_logs and console.is_terminal:
            self.live = Live(self._render(), console=console, refresh_per_second=2, transient=False)
            self.live.start()

    def update(self, **changes) -> None:
        with self.lock:
            if all(getattr(self.status, key) == value for key, value in changes.items()):
                return
            for key, value in changes.items():
                setattr(self.status, key, value)
            if self.live is not None:
                self.live.update(self._render())
            elif self.json_logs or "epoch" in changes or "state" in changes:
                logger.info(self._line(), extra={"fields": {"status": asdict(self.status)}})

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()

    def _line(self) -> str:
        s = self.status
        loss = f"{s.loss:.4f}" if s.loss is not None else "-"
        return (f"{s.state} | epoch {s.epoch} | {s.local_samples_per_second:.1f} samples/s here, "
                f"{s.swarm_samples_per_second:.1f} in the swarm | loss {loss} | {s.num_peers} peers | reports "
                f"{s.queued} queued, {s.acked} acked, {s.rejected} rejected | credits {s.credits_pending} pending, "
                f"{s.credits_vested} vested" + (f" | averaging: {s.averaging}" if s.averaging else ""))

    def _render(self) -> Text:
        return Text(self._line())


# Failed rounds in a row before the status line says so: one now and then is a slow groupmate.
FAILURES_TO_REPORT = 3


def averaging_advice(failures: int, error: str, client_mode: bool) -> str:
    """The status line's word on `failures` failed averaging rounds in a row, the last with `error`."""
    if failures < FAILURES_TO_REPORT:
        return ""
    said = f"failed {failures} rounds in a row ({error[:120]})"
    if "no other peers" in error:
        return f"{said}: no other volunteer is training; your work still counts"
    if client_mode:
        return (f"{said}: behind NAT, this node averages through the lead's helper; ask the lead whether "
                "its --aux-port is open")
    return (f"{said}: if this host is behind NAT or a firewall, join with --client-mode; `potluck swarm status` "
            "shows how the others fare")
