"""Runs the grading notebook and then the probes, inside the sandbox (`python /opt/dgm/run_notebook.py`).

Standalone (stdlib, nbformat, nbclient, ipykernel): it is copied into the sandbox read-only and never
imports `grader`. Reads `grading.ipynb` and `inputs/config.json` from the working directory; writes
`out/executed.ipynb` and `out/status.json`. nbclient has no cap on outputs, so this runner drops output
beyond a per-cell budget while the cell runs: a cell printing gigabytes costs time, not memory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

OUT = Path("out")
HERE = Path(__file__).resolve().parent  # /opt/dgm inside the sandbox
PROBE_CELL = f"""\
import sys as _dgm_sys
_dgm_sys.path.insert(0, {str(HERE)!r})
import harness as _dgm_harness
_dgm_harness.run_probes({str(HERE / "probes.py")!r}, globals())
"""
# Runs first in the kernel. A print loop must cost time, not memory: IPython 9 copies every byte a
# cell prints into its in-memory history (InteractiveShell._tee) and ipykernel queues whole buffers on
# ZMQ before the runner can drop anything. So history capture is switched off and the streams stop
# forwarding after `cap` characters per cell.
SETUP_CELL = """\
def _dgm_cap_streams(cap):
    import contextlib
    import sys

    import torch  # warm: a slow import is paid here, not against a student cell's timeout

    shell = get_ipython()
    shell._tee = lambda channel: contextlib.nullcontext()

    def capped(stream):
        used = [0]

        def write(text, _write=stream.write):
            if used[0] >= cap:
                return len(text)
            used[0] += len(text)
            if used[0] >= cap:
                text = text[: len(text) - (used[0] - cap)] + "\\n[output truncated by the grader]\\n"
            return _write(text)

        def install(*_):
            used[0] = 0
            stream.write = write  # ipykernel flushes only its own OutStream objects: patch, do not wrap

        return install

    # Installed before each cell: this cell's own _tee puts the original write back when it ends.
    for install in (capped(sys.stdout), capped(sys.stderr)):
        shell.events.register("pre_run_cell", install)

_dgm_cap_streams({cap})
del _dgm_cap_streams
"""


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most `cap` bytes of output per cell."""

    def __init__(self, nb: nbformat.NotebookNode, cap: int, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.cap = cap
        self.used: dict[int, int] = {}
        self.truncated: set[int] = set()

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self.used.get(cell_index, 0) + size
        self.used[cell_index] = used
        if used > self.cap:
            if cell_index not in self.truncated:
                self.truncated.add(cell_index)
                outs.append(
                    nbformat.v4.new_output(
                        "stream", name="stderr", text=f"\n[output truncated by the grader after {self.cap} bytes]\n"
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


def main() -> int:
    config = json.loads(Path("inputs/config.json").read_text())
    nb = nbformat.read("grading.ipynb", as_version=4)
    cap = int(config.get("output_cap_bytes", 256 * 1024))
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP_CELL.format(cap=cap // 2), metadata={"dgm": {"id": "_setup"}}))
    probes = (HERE / "probes.py").exists()
    if probes:
        nb.cells.append(nbformat.v4.new_code_cell(PROBE_CELL, metadata={"dgm": {"id": "_probes"}}))
    client = CappedClient(
        nb,
        cap=cap,
        kernel_name="python3",
        timeout=float(config.get("cell_timeout_s", 120)),
        startup_timeout=90,
        allow_errors=True,
        interrupt_on_timeout=True,
        record_timing=True,
        resources={"metadata": {"path": str(Path.cwd())}},
    )
    cells: list[dict[str, Any]] = []
    kernel_died = False
    start = time.monotonic()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            ours = cell.get("metadata", {}).get("dgm", {}).get("id") in ("_setup", "_probes")
            timeout = float(config.get("probes_timeout_s" if ours else "cell_timeout_s", 120))
            client.timeout = timeout  # type: ignore[assignment]
            status, detail = "ok", ""
            began = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                status, detail = "timeout", f"exceeded {timeout:g} s"
            except DeadKernelError as exc:
                status, detail, kernel_died = "kernel_died", str(exc)[:500], True
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if status == "ok" and errors:
                status, detail = "error", f"{errors[0].get('ename', '')}: {errors[0].get('evalue', '')}"[:500]
            if status == "error" and time.monotonic() - began >= 0.95 * timeout:
                # interrupt_on_timeout: nbclient interrupted the kernel, the cell ended in KeyboardInterrupt
                status, detail = "timeout", f"exceeded {timeout:g} s and was interrupted"
            if index == 0:  # our setup cell; the indices reported are those of the grading notebook
                continue
            cells.append(
                {
                    "index": index - 1,
                    "id": cell.get("metadata", {}).get("dgm", {}).get("id", ""),
                    "status": status,
                    "detail": detail,
                    "truncated": index in client.truncated,
                }
            )
            if kernel_died:
                break
    nb.cells.pop(0)
    if probes:
        nb.cells.pop()
    OUT.mkdir(exist_ok=True)
    nbformat.write(nb, str(OUT / "executed.ipynb"))
    summary = {"cells": cells, "kernel_died": kernel_died, "duration_s": round(time.monotonic() - start, 3)}
    (OUT / "status.json").write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
