"""Making a new directory entry durable: the one helper the store and the device key share."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """fsync ``folder`` so a file just created, renamed or linked in it survives a power cut;
    a file system that cannot (some FUSE and network mounts) is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
