"""`collect` reads what the orchestrator wrote; it validates everything and never raises.

Only the orchestrator's uid can write `out/` now, but collect still treats its content as untrusted:
the replies inside came from the student's kernel.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from grader.collect import collect


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out" / "replies").mkdir(parents=True)
    return tmp_path / "out"


def status(*queries: dict, cells: list | None = None) -> str:
    return json.dumps({"cells": cells or [{"index": 0, "status": "ok"}], "queries": list(queries), "complete": True})


def test_queries_fold_into_probes_and_keyed_tensors(out):
    save_file({"x": np.ones((2, 3), np.float32)}, str(out / "replies" / "0.safetensors"))
    save_file({"logits": np.zeros(4, np.float32)}, str(out / "replies" / "1.safetensors"))
    save_file({"logits": np.ones(4, np.float32)}, str(out / "replies" / "2.safetensors"))
    (out / "status.json").write_text(
        status(
            {"probe": "p", "status": "ok", "values": {"n": 3}, "tensors": "0.safetensors"},
            {"probe": "ev", "step": 0, "stepped": True, "status": "ok", "tensors": "1.safetensors"},
            {"probe": "ev", "step": 1, "stepped": True, "status": "ok", "tensors": "2.safetensors"},
        )
    )
    art = collect(out.parent)
    assert art.problems == []
    assert art.tensors["p/x"].shape == (2, 3) and art.probes["p"].values == {"n": 3}
    assert art.tensors["ev/1/logits"].tolist() == [1.0] * 4 and art.probes["ev"].status == "ok"


def test_a_stepped_probe_fails_when_one_step_fails(out):
    (out / "status.json").write_text(
        status(
            {"probe": "ev", "step": 0, "stepped": True, "status": "ok"},
            {"probe": "ev", "step": 1, "stepped": True, "status": "timeout", "message": "exceeded 5 s"},
        )
    )
    record = collect(out.parent).probes["ev"]
    assert record.status == "timeout" and record.message == "step 1: exceeded 5 s"


def test_reply_files_outside_the_replies_folder_are_refused(out, tmp_path):
    (tmp_path / "secret.safetensors").write_bytes(b"")
    (out / "status.json").write_text(status({"probe": "p", "status": "ok", "tensors": "../../secret.safetensors"}))
    art = collect(out.parent)
    assert art.probes == {} and art.status is None
    assert any("run status unreadable" in p for p in art.problems)


def test_symlinked_fifo_and_oversized_files_are_refused(out, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(status())
    os.symlink(secret, out / "status.json")
    assert any("cannot be opened" in p for p in collect(out.parent).problems)
    os.unlink(out / "status.json")
    os.mkfifo(out / "status.json")
    (out / "executed.ipynb").write_bytes(b" " * (65 * 2**20))
    problems = collect(out.parent).problems
    assert any("not a regular file" in p for p in problems) and any("exceeds the limit" in p for p in problems)


@pytest.mark.parametrize(
    "content",
    [
        '{"cells": [{"index": 0, "status": "hacked"}]}',
        '{"cells": 7}',
        '{"cells": [], "queries": [{"probe": "p", "status": "ok", "values": {"x": [1, 2]}}]}',
        "[" * 10_000 + "]" * 10_000,
        "\x00\xff",
    ],
)
def test_malformed_status_is_a_problem_not_a_crash(out, content):
    (out / "status.json").write_text(content, errors="surrogateescape")
    art = collect(out.parent)
    assert art.status is None and art.probes == {} and len(art.problems) == 1


def test_malformed_reply_tensors_fail_only_their_probe(out):
    (out / "replies" / "0.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}")
    save_file({"y": np.ones(2, np.float32)}, str(out / "replies" / "1.safetensors"))
    (out / "status.json").write_text(
        status(
            {"probe": "bad", "status": "ok", "tensors": "0.safetensors"},
            {"probe": "good", "status": "ok", "tensors": "1.safetensors"},
        )
    )
    art = collect(out.parent)
    assert art.probes["bad"].status == "error" and "unreadable" in art.probes["bad"].message
    assert art.probes["good"].status == "ok" and "good/y" in art.tensors


def test_replaced_output_directory(tmp_path):
    os.symlink("/etc", tmp_path / "out")
    art = collect(tmp_path)
    assert art.problems == ["the output directory was replaced; no results could be read"]
