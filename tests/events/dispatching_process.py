"""One dispatcher process for the tests of several dispatchers on one outbox.

Run as ``python -m tests.events.dispatching_process MANIFEST OUT_DIR STOP_FILE``: it assembles the stack
with two recording listeners and delivers in a loop (``dispatch(wait=False)``, as a dispatcher loop does)
until STOP_FILE exists, then delivers what is left and exits. Every delivery to a recorder is appended to
``OUT_DIR/deliveries-<pid>.jsonl`` as it ends, with its start and end on the machine's monotonic clock
(shared by every process), whether its transaction later commits or not: the test checks from these that
no two deliveries to one subscriber ever overlapped, and in which order each order's events arrived.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, ClassVar

from retailblocks import Block, Event, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.stack import Stack, assemble

#: Two recorders, so that three processes have three subscribers (with the fusion block) to share.
RECORDERS = ("recorder-a", "recorder-b")
BLOCKS = "".join(f"  - use: recorder\n    id: {name}\n" for name in RECORDERS)


class Recorder(Block):
    """Writes down every delivery it is handed: which process, which event, when it began and ended."""

    name = "recorder"
    log: ClassVar[IO[str] | None] = None
    #: How long one delivery lasts: long enough that two overlapping would show.
    pause: ClassVar[float] = 0.001

    @hookimpl
    def stack_event(self, event: Event) -> None:
        start = time.monotonic_ns()
        time.sleep(self.pause)
        end = time.monotonic_ns()
        if self.log is not None:
            line = {
                "pid": os.getpid(),
                "subscriber": self.id,
                "event": event.id,
                "order": event.order_id,
                "start": start,
                "end": end,
            }
            self.log.write(json.dumps(line) + "\n")
            self.log.flush()


def installed() -> dict[str, BlockInfo]:
    return {
        **discover({}),
        "recorder": BlockInfo(
            "recorder", "tests", "1.0", "tests.events.dispatching_process:Recorder", block_class=Recorder
        ),
    }


def open_stack(manifest: Path) -> Stack:
    return assemble(manifest, installed=installed())


def main(manifest: str, out_dir: str, stop_file: str) -> None:
    from retailblocks.events.dispatcher import dispatch

    Recorder.log = (Path(out_dir) / f"deliveries-{os.getpid()}.jsonl").open("a", encoding="utf-8")
    stack = open_stack(Path(manifest))
    (Path(out_dir) / f"ready-{os.getpid()}").touch()  # the test places its orders once all are running
    rounds = busy = 0
    try:
        while not Path(stop_file).exists():
            report = dispatch(stack, batch=5, wait=False)
            rounds += 1
            busy += report.busy
            if report.delivered == 0:
                time.sleep(0.05)
        # Every order was committed before the stop file was written: deliver what is left, waiting for
        # the subscribers another process is still delivering (a finishing dispatcher may hold them).
        while True:
            report = dispatch(stack, batch=5, wait=True)
            if report.delivered == 0 and report.busy == 0:
                break
    finally:
        stack.close()
        Recorder.log.close()
    print(json.dumps({"pid": os.getpid(), "rounds": rounds, "busy": busy}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
