"""The loop of a local worker process: batches in through its pipe, one reply out per batch.

Kept apart from :mod:`~engine.jobs.ast_index.pool` so a spawned process
imports only this and :mod:`~engine.jobs.ast_index.parse` (no asyncio, no
engine): a worker answers sooner after a start or a resume.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection

from engine.jobs.ast_index.parse import parse_request


def worker_main(inbox: Connection, outbox: Connection) -> None:
    # Ctrl-C reaches the whole process group: the engine stops its workers (by closing the pipe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            request = inbox.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        reply = parse_request(request)
        try:
            outbox.send(reply)
        except OSError:       # the engine is gone (killed): nobody to answer
            return


if __name__ == "__main__":
    # argv: the fd to read batches from, the fd to write replies to (see pool._Process)
    inbox, outbox = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    worker_main(inbox, outbox)
