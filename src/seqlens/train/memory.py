"""Keep freed memory in the process instead of returning it to the OS after every training step.

glibc hands large blocks (logits, activations) back to the kernel on free; the next step then pays a
page fault for every 4 KiB it touches again, which on a 2-core machine costs as much as the
arithmetic. Raising the mmap and trim thresholds makes those blocks reusable. No-op off glibc.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep up to `threshold` bytes of freed memory; returns whether it applied."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))
    except (OSError, AttributeError, TypeError):
        return False
    return _done
