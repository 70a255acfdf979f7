"""A queue worker whose apply stops in the middle of its transaction, after writing the file's
patients and before its episodes, and says so in the file STUCK_MARKER: the test then kills it
there (SIGKILL), as a crash or a lost host would (tests/integration/test_import_queue.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from huey.bin.huey_consumer import consumer_main

from portal.extensions import db
from portal.records.importing import apply as apply_module

_write_patients = apply_module._write_patients


def _stuck(*args, **kwargs):
    written = _write_patients(*args, **kwargs)
    db.session.flush()
    Path(os.environ["STUCK_MARKER"]).write_text("writing")
    time.sleep(600)
    return written


apply_module._write_patients = _stuck

if __name__ == "__main__":
    sys.argv = ["huey_consumer", "portal.background.huey", "-w", "1", "-k", "thread", "-m", "1"]
    consumer_main()
