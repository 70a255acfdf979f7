"""Files that hold patient data (uploads, backups, restored databases, exports written to a path)
are readable by their owner only (security.md, "Keeping data"): created 0600 from the start, so
there is no moment at which another local account could open them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600


def make_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist; make it 0600 if it does."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE)
    os.close(descriptor)
    os.chmod(path, PRIVATE)


def open_private(path: Path) -> BinaryIO:
    """A new file (or an emptied existing one) for writing bytes, mode 0600 whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    os.chmod(path, PRIVATE)
    return os.fdopen(descriptor, "wb")
