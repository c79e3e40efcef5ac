"""The orchestrator: runs the grading notebook in the student's kernel, then asks it the probes' queries.

Runs inside the sandbox as its own uid (`python /opt/dgm/run_notebook.py`); the student's kernel runs
as another uid (`DGM_KERNEL_UID`) that cannot signal, trace or write to this process or its files.
Standalone (stdlib, nbformat, nbclient, jupyter_client): it never imports `grader`.

Reads `grading.ipynb` and `inputs/` (config, query files; readable by this uid only). For each query it
copies the query's files where the kernel can read them, runs `harness.answer(...)` in the kernel, and
keeps the reply that comes back on the kernel's message channel. Writes `out/executed.ipynb`,
`out/replies/*.safetensors` and `out/status.json`; the host reads nothing else. A reply counts only
if it arrived for the query that asked for it, within its time limit.

nbclient has no cap on outputs and waits forever on a cell that ignores interrupts: this runner caps
every output message per cell (display updates included, counted once per output they rewrite) and
kills the kernel when a timed-out cell does not stop within a grace period; later cells are then
reported `not_run`. Every message comes from the student's kernel and may be malformed on purpose: a
message nbclient cannot digest is dropped, and a cell whose messages break nbclient stops the kernel
(the student's failure, reported as such, never a crash of this process).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any, cast

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, DeadKernelError

HERE = Path(__file__).resolve().parent  # /opt/dgm inside the sandbox
OUT = Path("out")
INPUTS = Path("inputs")
QUERIES = Path("queries")  # the kernel may read a query's files here once it is asked
WORK = Path("work")  # the kernel's home and cwd: the only place it may write besides /tmp
RUNTIME = Path("runtime")  # kernel spec and connection file
REPLY_MIME = "application/vnd.dgm.reply+json"
KILL_GRACE_S = 10.0  # how long a timed-out cell gets to honour the interrupt before the kernel is killed
MAX_REPLY_BYTES = 256 * 2**20  # one reply's tensors
MAX_TOTAL_REPLY_BYTES = 2 * 2**30  # all replies of a run, which the host loads (collect.py has the same cap)
MAX_VALUES = 1000  # JSON scalars per reply
NO_HISTORY = "--HistoryManager.enabled=False"
OUTPUT_TYPES = ("stream", "display_data", "update_display_data", "execute_result", "error", "clear_output")

# Runs first in the kernel. A print loop must cost time, not memory: IPython 9 copies every byte a
# cell prints into its in-memory history (InteractiveShell._tee) and ipykernel queues whole buffers on
# ZMQ before the runner can drop anything. So history capture is switched off and the streams stop
# forwarding after `cap` characters per cell. (This protects the kernel from itself; the runner's own
# cap below does not depend on it.)
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
QUERY_CELL = "import sys; sys.path.insert(0, {here!r}); import harness; harness.answer({path!r})"


class StudentKernelManager(AsyncKernelManager):
    """Writes the connection file readable by the kernel, which runs as another uid."""

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        os.chmod(self.connection_file, 0o644)


class Orchestrator(NotebookClient):
    """nbclient with per-cell output caps, a hard kill after a grace period, and reply capture."""

    def __init__(self, nb: nbformat.NotebookNode, cap: int, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.cap = cap
        self.used: dict[int, int] = {}
        self.truncated: set[int] = set()
        self.token: str | None = None  # the query being answered
        self.reply: dict[str, Any] | None = None
        self.reply_bytes = 0  # the replies' tensors written so far

    @property
    def kernel(self) -> AsyncKernelManager:
        """The student's kernel's manager (nbclient types it loosely: sync or async, or not yet made)."""
        return cast(AsyncKernelManager, self.km)

    def process_message(self, msg: dict, cell: nbformat.NotebookNode, cell_index: int) -> Any:
        """nbclient's, capped; a message it cannot digest (the kernel crafted it) is dropped."""
        try:
            return self._process(msg, cell, cell_index)
        except CellExecutionComplete:
            raise
        except Exception:
            return None

    def _process(self, msg: dict, cell: nbformat.NotebookNode, cell_index: int) -> Any:
        msg_type = msg["msg_type"]
        content = msg["content"]
        if msg_type.startswith("comm"):
            return None  # no widgets: nbclient would keep their state in memory, uncapped
        if not isinstance(content.get("execution_count"), int | None):
            return None  # nbclient copies it into the cell, whatever the message, uncapped
        if msg_type not in OUTPUT_TYPES:
            return super().process_message(msg, cell, cell_index)
        data = content.get("data")
        if isinstance(data, dict) and REPLY_MIME in data:
            self._take_reply(data[REPLY_MIME])
            return None
        transient = content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        if self.token is not None and (display_id is not None or msg_type == "clear_output"):
            return None  # a query's output is discarded with its cell; it may not rewrite the notebook's
        # A display update rewrites every output shown under its id, in any cell: count each copy.
        shown = sum(len(v) for v in self._display_id_map.get(display_id, {}).values()) if display_id else 0
        copies = max(shown, 1) if msg_type == "update_display_data" else shown + 1
        size = len(json.dumps(content, default=str)) * copies
        used = self.used.get(cell_index, 0) + size
        self.used[cell_index] = used
        if used > self.cap:  # covers display updates, which nbclient applies outside `output`
            if cell_index not in self.truncated:
                self.truncated.add(cell_index)
                note = f"\n[output truncated by the grader after {self.cap} bytes]\n"
                cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=note))
            return None
        return super().process_message(msg, cell, cell_index)

    def _update_display_id(self, display_id: str, msg: dict[str, Any]) -> None:
        """nbclient's, without targets that no longer exist (a removed cell, cleared outputs)."""
        cells = self.nb["cells"]
        for cell_idx, indices in self._display_id_map.get(display_id, {}).items():
            outputs = cells[cell_idx].get("outputs", []) if 0 <= cell_idx < len(cells) else []
            indices[:] = [i for i in indices if 0 <= i < len(outputs) and "data" in outputs[i]]
        super()._update_display_id(display_id, msg)

    def _take_reply(self, reply: Any) -> None:
        """Keep the first well-formed reply that carries the current query's token."""
        if self.token is None or self.reply is not None or not isinstance(reply, dict):
            return
        if reply.get("token") != self.token:
            return
        self.reply = reply

    async def run_cell(self, cell: nbformat.NotebookNode, index: int, timeout: float) -> tuple[str, str]:
        """Execute one cell; returns (status, detail). Kills the kernel if it ignores the interrupt."""
        fired: list[str] = []

        async def watchdog() -> None:
            await asyncio.sleep(timeout)
            fired.append("interrupted")
            await self.kernel.interrupt_kernel()
            await asyncio.sleep(KILL_GRACE_S)
            fired.append("killed")
            await self.kernel.shutdown_kernel(now=True)

        dog = asyncio.ensure_future(watchdog())
        try:
            await self.async_execute_cell(cell, index)
        except DeadKernelError as exc:
            if fired:
                return "timeout", f"exceeded {timeout:g} s and ignored the interrupt; the kernel was stopped"
            return "kernel_died", str(exc)[:500]
        except Exception as exc:  # nbclient choked on a message the kernel crafted (see the module doc)
            dog.cancel()
            with contextlib.suppress(Exception):  # it may be gone already
                await self.kernel.shutdown_kernel(now=True)
            return "error", f"the kernel sent a malformed message ({type(exc).__name__}); the kernel was stopped"
        finally:
            dog.cancel()
        if fired:
            return "timeout", f"exceeded {timeout:g} s and was interrupted"
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            return "error", f"{errors[0].get('ename', '')}: {errors[0].get('evalue', '')}"[:500]
        return "ok", ""


def kernel_spec(kernel_uid: int | None) -> dict[str, Any]:
    """The kernel's command: as `kernel_uid` with no capabilities when one is given (root sandboxes)."""
    drop: list[str] = []
    if kernel_uid is not None:
        drop = [
            "setpriv", f"--reuid={kernel_uid}", f"--regid={kernel_uid}", "--clear-groups",
            "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
    home = str(WORK.resolve())
    return {
        # no SQLite history: the cells' inputs stay in memory (In, Out); nothing is written per cell
        "argv": [*drop, sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", NO_HISTORY],
        "env": {"HOME": home, "IPYTHONDIR": f"{home}/.ipython"},
        "display_name": "student",
        "language": "python",
        "interrupt_mode": "signal",
    }


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, bool | int) or (isinstance(value, str) and len(value) <= 2000)


def _save_reply(client: Orchestrator, reply: dict[str, Any], number: int) -> dict[str, Any]:
    """The record of one query's reply for status.json; its tensors go to out/replies/<number>.

    A malformed reply fails its own query only. The tensors of all replies together are capped, since
    the host loads them.
    """
    status, message, values = reply.get("status"), reply.get("message") or "", reply.get("values") or {}
    if status not in ("ok", "error") or not isinstance(message, str) or not isinstance(values, dict):
        return {"status": "error", "message": "malformed reply"}
    scalars = all(isinstance(k, str) and len(k) <= 200 and _scalar(v) for k, v in values.items())
    if len(values) > MAX_VALUES or not scalars:
        return {"status": "error", "message": "malformed reply: values must be at most 1000 finite JSON scalars"}
    record: dict[str, Any] = {"status": status, "message": message[:4000], "values": values}
    encoded = reply.get("tensors") or ""
    if not isinstance(encoded, str) or len(encoded) > MAX_REPLY_BYTES * 4 // 3 + 4:
        return {"status": "error", "message": "the reply's tensors are too large or malformed"}
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return {"status": "error", "message": "the reply's tensors are not valid base64"}
    if client.reply_bytes + len(raw) > MAX_TOTAL_REPLY_BYTES:
        return {"status": "error", "message": f"the replies' tensors exceed {MAX_TOTAL_REPLY_BYTES} bytes in all"}
    if raw:
        client.reply_bytes += len(raw)
        (OUT / "replies").mkdir(exist_ok=True)
        (OUT / "replies" / f"{number}.safetensors").write_bytes(raw)
        record["tensors"] = f"{number}.safetensors"
    return record


async def _ask(client: Orchestrator, query: dict[str, Any], number: int) -> dict[str, Any]:
    """Send one query to the kernel; its record for status.json."""
    token = secrets.token_hex(8)
    meta = json.loads((INPUTS / f"{query['file']}.json").read_text()) | {"token": token}
    shown = [QUERIES / f"{token}.json"]
    shown[0].write_text(json.dumps(meta))
    if (INPUTS / f"{query['file']}.safetensors").exists():
        shown.append(QUERIES / f"{token}.safetensors")
        shutil.copyfile(INPUTS / f"{query['file']}.safetensors", shown[1])
    for path in shown:
        path.chmod(0o644)
    client.token, client.reply = token, None
    start = time.monotonic()
    query_cell = QUERY_CELL.format(here=str(HERE), path=str((QUERIES / token).resolve()))
    outcome, detail = await _run_scratch(client, query_cell, float(query["timeout_s"]))
    client.token = None
    for path in shown:
        path.unlink()
    record = {k: query[k] for k in ("probe", "step", "stepped")} | {"duration_s": round(time.monotonic() - start, 3)}
    if outcome == "timeout":
        return record | {"status": "timeout", "message": f"probe {detail}"}
    if client.reply is None:
        return record | {"status": "error", "message": f"no answer: {detail or 'the kernel sent no reply'}"}
    return record | _save_reply(client, client.reply, number)


async def _run_scratch(client: Orchestrator, source: str, timeout: float) -> tuple[str, str]:
    """Run a cell of ours (setup, a query) after the notebook's cells, then remove it again.

    The notebook's cells keep their indices, which nbclient's display-id map refers to.
    """
    cell = nbformat.v4.new_code_cell(source)
    client.nb.cells.append(cell)
    index = len(client.nb.cells) - 1
    client.used.pop(index, None)
    client.truncated.discard(index)
    try:
        return await client.run_cell(cell, index, timeout)
    finally:
        client.nb.cells.pop()
        client.clear_display_id_mapping(index)


async def run(config: dict[str, Any], nb: nbformat.NotebookNode) -> None:
    cap = int(config.get("output_cap_bytes", 256 * 1024))
    kernel_uid = os.environ.get("DGM_KERNEL_UID")
    spec_dir = RUNTIME / "kernels" / "student"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(kernel_spec(int(kernel_uid) if kernel_uid else None)))
    os.environ["JUPYTER_PATH"] = str(RUNTIME.resolve())
    os.environ["JUPYTER_RUNTIME_DIR"] = str(RUNTIME.resolve())
    client = Orchestrator(
        nb,
        cap=cap,
        kernel_name="student",
        kernel_manager_class=StudentKernelManager,
        timeout=None,  # the watchdog in `run_cell` owns timeouts
        startup_timeout=90,
        allow_errors=True,
        record_timing=True,
        resources={"metadata": {"path": str(WORK.resolve())}},
    )
    cells: list[dict[str, Any]] = []
    # Every query is listed from the start: one this run never asked (it was cut short) fails its probe.
    queries = [
        {k: query[k] for k in ("probe", "step", "stepped")} | {"status": "skipped", "message": "the run ended first"}
        for query in config["queries"]
    ]
    status: dict[str, Any] = {"cells": cells, "queries": queries, "kernel_died": False, "complete": False}
    start = time.monotonic()
    async with client.async_setup_kernel():
        outcome, detail = await _run_scratch(client, SETUP_CELL.format(cap=cap // 2), float(config["wall_s"]))
        dead = outcome == "kernel_died" or "kernel was stopped" in detail
        for index, cell in enumerate(list(nb.cells)):
            if cell.cell_type != "code":
                continue
            cell_id = cell.get("metadata", {}).get("dgm", {}).get("id", "")
            if dead:
                outcome, detail = "not_run", "the kernel had stopped"
            else:
                outcome, detail = await client.run_cell(cell, index, float(config["cell_timeout_s"]))
                dead = outcome == "kernel_died" or "kernel was stopped" in detail
            truncated = index in client.truncated
            cells.append({"index": index, "id": cell_id, "status": outcome, "detail": detail, "truncated": truncated})
        _write(nb, status | {"kernel_died": dead})
        for number, query in enumerate(config["queries"]):
            if dead:
                queries[number] |= {"message": "the kernel had stopped"}
                continue
            record = await _ask(client, query, number)
            queries[number] = record
            dead = "kernel was stopped" in record.get("message", "") or not await client.kernel.is_alive()
            _write(None, status | {"kernel_died": dead})
    _write(nb, status | {"kernel_died": dead, "complete": True, "duration_s": round(time.monotonic() - start, 3)})


def _write(nb: nbformat.NotebookNode | None, status: dict[str, Any]) -> None:
    """Replace out/status.json (and out/executed.ipynb) atomically: the host may read them at any point.

    Texts from the kernel may hold lone surrogates (valid JSON escapes, not UTF-8): they become "?".
    """
    if nb is not None:
        try:
            text = nbformat.writes(nb)
        except Exception:  # outputs nbformat cannot serialise (nested too deep, ...): keep the code only
            for cell in nb.cells:
                if cell.cell_type == "code":
                    note = "[outputs dropped by the grader: they could not be saved]\n"
                    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=note)]
            text = nbformat.writes(nb)
        (OUT / "executed.ipynb.tmp").write_bytes(text.encode("utf-8", errors="replace"))
        os.replace(OUT / "executed.ipynb.tmp", OUT / "executed.ipynb")
    (OUT / "status.json.tmp").write_bytes(json.dumps(status, ensure_ascii=False).encode("utf-8", errors="replace"))
    os.replace(OUT / "status.json.tmp", OUT / "status.json")


def main() -> int:
    config = json.loads((INPUTS / "config.json").read_text())
    nb = nbformat.read("grading.ipynb", as_version=4)
    asyncio.run(run(config, nb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
