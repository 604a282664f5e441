"""Runs ``embedkit`` as a real process, with two test hooks set by environment variables.

``EMBEDKIT_TEST_DENY_READS``: paths (os.pathsep-separated) whose ``open()``
fails with PermissionError, standing in for ``chmod 000`` when the tests run
as root. ``EMBEDKIT_TEST_SLOW_FLUSH``: seconds to sleep before each embedding
batch, so a test can kill the process part-way through an index run.
"""

import os
import time

from tests.robustness.bad_inputs import deny_reads


def _slow_down(seconds: float) -> None:
    from embedkit.pipeline import FacePipeline

    flush = FacePipeline._flush

    def slow_flush(self, results):
        time.sleep(seconds)
        yield from flush(self, results)

    FacePipeline._flush = slow_flush


if __name__ == "__main__":
    if os.environ.get("EMBEDKIT_TEST_SLOW_FLUSH"):
        _slow_down(float(os.environ["EMBEDKIT_TEST_SLOW_FLUSH"]))
    from embedkit.cli import main

    denied = [p for p in os.environ.get("EMBEDKIT_TEST_DENY_READS", "").split(os.pathsep) if p]
    with deny_reads(denied):
        main(prog_name="embedkit")
