"""Logs for a long run: a file that rotates itself, and the journal's own format under systemd."""
import logging

import pytest

from stream.config import LogSettings
from stream.logs import LogFileError, configure


@pytest.fixture
def root_logging():
    """configure() replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers[:]:
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_the_log_file_rotates_at_its_size_and_keeps_so_many(tmp_path, root_logging):
    path = tmp_path / "dream.log"
    configure(logging.INFO, LogSettings(str(path), max_mb=0.01, keep=2))  # about 10 kB a file
    log = logging.getLogger("stream.test")
    for i in range(200):
        log.info("event %d %s", i, "x" * 200)
    log.debug("not at INFO")
    logging.getLogger().handlers[0].flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dream.log", "dream.log.1", "dream.log.2"]
    assert all(p.stat().st_size <= 0.01 * 2**20 for p in tmp_path.iterdir())
    text = path.read_text()
    assert "event 199" in text and "INFO stream.test: event" in text and "not at INFO" not in text


def test_an_unwritable_log_file_is_one_clear_error(tmp_path, root_logging):
    with pytest.raises(LogFileError, match=r"cannot write the log file .*missing.*: No such file"):
        configure(logging.INFO, LogSettings(str(tmp_path / "missing" / "x.log")))


def test_the_journal_gets_a_priority_and_no_timestamp(capsys, root_logging):
    configure(logging.INFO, journal=True)
    logging.getLogger("stream.outputs.rtmp").warning("rtmp: the ingest went away")
    logging.getLogger("stream.spine.engine").info("dreaming volcano")
    assert capsys.readouterr().err.splitlines() == ["<4>WARNING stream.outputs.rtmp: rtmp: the ingest went away",
                                                    "<6>INFO stream.spine.engine: dreaming volcano"]
