"""The lead's side: the tracker, by stage of a report's way through it.

    intake/    stage (a): open envelopes (in worker processes), cheap checks, the pump to the ledger
    verifier/  stages (b) and (c): the verifier process, and the tracker's side of it
    credit/    every account's state, and the credit policy that vests, strikes and forfeits
    ledger/    the credit log: its store (SQLite, PostgreSQL), its single writer, its key
    service/   the gRPC servers volunteers and auditors call
    swarm/     swarm.toml, `swarm start`, and a local swarm for the demo
    tracker.py the assembled `Tracker`

This file imports nothing: the report-opening workers import `intake` and must not load torch.
"""
