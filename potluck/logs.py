"""Logging for potluck's processes: level from POTLUCK_LOGLEVEL, plain text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for running as a service."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(*, json_logs: bool = False) -> None:
    """Send logs to stderr (stdout is for the CLI's own output)."""
    level = os.environ.get("POTLUCK_LOGLEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    # hivemind configures its own loggers; keep them quieter than ours unless asked.
    logging.getLogger("hivemind").setLevel(os.environ.get("POTLUCK_HIVEMIND_LOGLEVEL", "WARNING").upper())
