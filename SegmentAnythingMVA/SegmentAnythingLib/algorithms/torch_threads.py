"""Torch thread counts for one piece of work on the calling thread (the prompt decoder of a click).

A click decodes on the GUI thread (desktop) or the session's event loop (browser) while the image encoder may be
embedding neighbours in another thread or process. With torch's OpenMP backend (the PyPI and Slicer builds) the
count set by ``torch.set_num_threads`` applies to the calling thread's parallel regions, so a decoder run with its
own small count never waits in an OpenMP barrier for threads the encoder keeps busy: on the shared 2-core CI
machine the ViT-B decoder took 1-1.8 s with 2 threads and 0.17 s with 1. With a native thread pool the count is
process-wide for the duration of the block.

Torch gives a thread the process-wide count at its first parallel operation (or `get_num_threads`), and
`set_num_threads` also sets that process-wide count: a thread that starts its first torch work during a decode
takes the decoder's count. `torch_threads` reads the count before it sets one, so a thread that runs its work
inside `torch_threads(n)` has its own count from then on.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

DECODER_THREADS_VARIABLE = "MVA_DECODER_THREADS"
DEFAULT_DECODER_THREADS = 1


class ThreadCountError(ValueError):
    """A thread count that is not a positive integer."""


def thread_count(value, what="thread count") -> int:
    """`value` as a positive int; raises ThreadCountError with what was given."""
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or str(value).strip() not in (str(count), f"{count}.0"):
        raise ThreadCountError(f"The {what} must be a whole number of threads, 1 or more; got {value!r}")
    return count


def default_decoder_threads(environ=None) -> int:
    """Torch threads of the interactive prompt decoder: $MVA_DECODER_THREADS, else 1.

    Raises
    ------
    ThreadCountError
        The variable is set to anything but a positive whole number.
    """
    raw = (os.environ if environ is None else environ).get(DECODER_THREADS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_DECODER_THREADS
    return thread_count(raw, f"${DECODER_THREADS_VARIABLE}")


@contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Run the block with `count` torch threads on this thread, then restore the previous count (None: as is)."""
    previous = torch.get_num_threads()
    if count is None or int(count) == previous:
        yield
        return
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
