"""Freed big blocks go back to the system at once (glibc's malloc)."""

from __future__ import annotations

import sys

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
BIG_BLOCK_BYTES = 1 << 20


def return_big_blocks() -> None:
    """Have glibc serve every allocation of 1 MiB or more with its own mmap, unmapped on free.

    By default glibc raises that threshold each time it frees such a block, up to 32 MiB, and
    blocks under it then come from the heap, where a freed one stays resident. A workflow with a
    20 MB prompt makes several copies of that size for a moment (tomllib's string, the JSON line
    claude-agent-sdk sends): a run peaked ~30 MB higher for them. Nothing on other C libraries
    or systems, or if the call is not there.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has a mallopt that does nothing)
        libc.mallopt(M_MMAP_THRESHOLD, BIG_BLOCK_BYTES)
    except (OSError, AttributeError):
        pass
