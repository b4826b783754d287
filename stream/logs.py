"""Logging for a run of days: one line per event (never one per frame; see worker.Repeats),
to stderr, or to a file that rotates itself. Only the command line calls this.

    configure(logging.INFO)                       # stderr; the journal's format under systemd
    configure(logging.INFO, LogSettings("dreamstream.log", max_mb=10, keep=5))

Under systemd stderr is the journal (`journald_stderr`): it stamps each line with its own
time, so the line carries none, and starts with the syslog priority (`<4>` for a warning),
which journald reads, so `journalctl -p warning` finds what went wrong.
"""
from __future__ import annotations

import logging
import logging.handlers
import sys

from .config import LogSettings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "<%(priority)d>%(levelname)s %(name)s: %(message)s"
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class LogFileError(OSError):
    """The log file cannot be opened: one line for the user."""


class JournalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.priority = PRIORITY.get(record.levelno, 6)
        return super().format(record)


def configure(level: int, settings: LogSettings | None = None, journal: bool = False) -> None:
    """Route every logger to one handler at `level`: the rotated file of `settings`, or stderr
    (in the journal's format when `journal`). Replaces whatever was configured before."""
    if settings is not None and settings.file:
        try:
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                settings.file, maxBytes=max(1, int(settings.max_mb * 2**20)), backupCount=settings.keep,
                encoding="utf-8")
        except OSError as e:
            raise LogFileError(f"cannot write the log file {settings.file}: {e.strerror or e}") from None
        handler.setFormatter(logging.Formatter(FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter() if journal else logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # aioice tells every ICE check of every WebRTC peer at INFO (six lines a viewer): its warnings only
    logging.getLogger("aioice").setLevel(max(level, logging.WARNING))
