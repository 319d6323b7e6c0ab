"""A projector in a process of its own, for the crash and lock tests.

    python projection_worker.py STORE_URL PROJECTION_PATH follow BATCH   # catch up, printing the checkpoint
    python projection_worker.py STORE_URL PROJECTION_PATH hold           # keep the file open until stdin closes
    python projection_worker.py STORE_URL PROJECTION_PATH advance N M    # store N events, fold M more unstored, hold

Prints ``ready`` once the projector is open, then (``follow``) the checkpoint after every few
batches until the log's head, then ``done``; (``advance``) the position and checkpoint, then
waits to be killed.
"""

from __future__ import annotations

import sys

from events import open_store
from projections import Projector


def main(url: str, path: str, mode: str, batch: str = "64", more: str = "0") -> None:
    store = open_store(url, create=False)
    size = int(batch)
    with Projector(store, path, batch_size=size) as projector:
        print("ready", flush=True)
        if mode == "hold":
            sys.stdin.read()
            return
        if mode == "advance":
            projector.catch_up(size)
            projector.advance(int(more))
            print(projector.position, projector.checkpoint, flush=True)
            sys.stdin.read()
            return
        while projector.catch_up(size * 4):
            print(projector.position, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
