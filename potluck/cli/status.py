"""What `swarm status` and `credits show` print: the tracker's view, as tables or JSON."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from potluck.entries import credits_text
from potluck.identity import short_id
from potluck.proto import tracker_pb2 as pb
from potluck.tracker_client import TrackerClient


def balance_rows(response: pb.BalancesResponse, account: str | None = None) -> list[dict]:
    """Balances in credits, largest contributors first (only `account`'s, if given)."""
    unit = response.flops_per_credit or 1
    rows = [{"account_id": b.account_id, "granted": credits_text(b.granted_flops, unit),
             "escrow": credits_text(b.escrow_flops, unit), "vested": credits_text(b.vested_flops, unit),
             "forfeited": credits_text(b.forfeited_flops, unit), "strikes": b.strikes, "banned": b.banned,
             "checks_pending": b.checks_pending,
             **{f"data_{column}": credits_text(getattr(b, f"data_{column}_flops"), unit)
                for column in ("granted", "escrow", "vested", "forfeited")},
             "_order": b.vested_flops + b.escrow_flops + b.data_vested_flops + b.data_escrow_flops}
            for b in response.balances if account is None or b.account_id == account]
    rows.sort(key=lambda row: -row.pop("_order"))
    return rows


def fetch_status(client: TrackerClient) -> dict:
    status = client.status()
    rows = balance_rows(client.balances())
    spread = status.spread
    return {"tracker": client.address, "origin": status.origin, "epoch": status.epoch, "peers": status.num_peers,
            "samples_per_second": round(status.samples_per_second, 2), "loss": round(status.loss, 4),
            "parameter_spread": {"epoch": spread.epoch, "volunteers": spread.num_peers,
                                 "relative": float(f"{spread.relative:.3g}")} if status.HasField("spread") else None,
            "verifier": {"running": status.verifier.running, "restarts": status.verifier.restarts,
                         "outstanding_jobs": status.verifier.outstanding_jobs, "pid": status.verifier.pid,
                         "last_exit": status.verifier.last_exit,
                         "verdicts": {outcome: getattr(status.verifier, outcome)
                                      for outcome in ("recomputed", "failed", "unverifiable", "passed")}}
            if status.HasField("verifier") else None,
            "held_out_loss": {"epoch": status.held_out.epoch, "loss": round(status.held_out.loss, 4)}
            if status.HasField("held_out") else None,
            "averaging": [{"epoch": a.epoch, "volunteers": a.volunteers, "averaged": a.averaged,
                           "failures": {f.reason: f.volunteers for f in a.failures}} for a in status.averaging],
            "reports": status.num_reports, "ledger_entries": status.tree_size,
            "accounts": sum(1 for r in rows if r["granted"] != "0" or r["data_granted"] == "0"),
            "data_owners": sum(1 for r in rows if r["data_granted"] != "0"),
            "credits_vested": str(sum(Decimal(r["vested"]) for r in rows)),
            "credits_escrow": str(sum(Decimal(r["escrow"]) for r in rows)),
            "data_credits_vested": str(sum(Decimal(r["data_vested"]) for r in rows)),
            "data_credits_escrow": str(sum(Decimal(r["data_escrow"]) for r in rows))}


def render_status(status: dict) -> None:
    table = Table(title=f"swarm {status['origin']}", show_header=False)
    for key, value in status.items():
        if key == "parameter_spread":
            value = "not measured yet" if value is None else (
                f"{value['relative']:.2g} of their norm at epoch {value['epoch']} ({value['volunteers']} volunteers)")
        if key == "verifier":
            value = "none" if value is None else (
                f"{'running' if value['running'] else 'RESTARTING'}, {value['outstanding_jobs']} jobs waiting, "
                f"{value['verdicts']['recomputed']} recomputed, {value['verdicts']['failed']} failed"
                + (f", restarted {value['restarts']}x (last: {value['last_exit']})" if value["restarts"] else ""))
        if key == "held_out_loss":
            value = "not measured (no eval shards, or not yet)" if value is None else (
                f"{value['loss']:.4f} at epoch {value['epoch']}")
        if key == "averaging":
            value = "no reports yet" if not value else "\n".join(
                f"epoch {a['epoch']}: {a['averaged']} of {a['volunteers']} volunteers averaged"
                + "".join(f"; {n} failed: {reason}" for reason, n in a["failures"].items()) for a in value[-4:])
        table.add_row(key.replace("_", " "), str(value))
    Console().print(table)


def render_balances(rows: list[dict]) -> None:
    table = Table(title="credits (1 credit = 1 PFLOP of verified training; data: for the text trained on)")
    for column in ("#", "account", "vested", "escrow", "forfeited", "data vested", "data escrow", "data forfeited",
                   "strikes", "banned"):
        table.add_column(column, justify="left" if column == "account" else "right")
    for rank, row in enumerate(rows, 1):
        table.add_row(str(rank), short_id(row["account_id"]), row["vested"], row["escrow"], row["forfeited"],
                      row["data_vested"], row["data_escrow"], row["data_forfeited"], str(row["strikes"]),
                      "yes" if row["banned"] else "")
    Console().print(table)
