import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from grader.collect import collect


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def test_valid_artifacts_are_read(out):
    save_file({"p/x": np.ones((2, 3), np.float32)}, str(out / "outputs.safetensors"))
    (out / "probes.json").write_text(json.dumps({"probes": {"p": {"status": "ok", "values": {"n": 3}}}}))
    (out / "status.json").write_text(json.dumps({"cells": [{"index": 0, "status": "ok"}]}))
    art = collect(out.parent)
    assert art.problems == []
    assert art.tensors["p/x"].shape == (2, 3)
    assert art.probes["p"].values == {"n": 3}


def test_symlink_to_a_host_secret_is_refused(out, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"probes": {}}))
    os.symlink(secret, out / "probes.json")
    art = collect(out.parent)
    assert art.probes == {}
    assert any("probes" in p and "cannot be opened" in p for p in art.problems)


def test_fifo_and_oversized_files_are_refused(out):
    os.mkfifo(out / "status.json")
    (out / "probes.json").write_bytes(b" " * (5 * 2**20))
    art = collect(out.parent)
    assert any("not a regular file" in p for p in art.problems)
    assert any("exceeds the limit" in p for p in art.problems)


def test_malformed_json_and_tensors_are_problems_not_crashes(out):
    (out / "probes.json").write_text('{"probes": {"p": {"status": "hacked"}}}')
    (out / "outputs.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}")
    art = collect(out.parent)
    assert art.probes == {} and art.tensors == {}
    assert len(art.problems) == 2


def test_replaced_output_directory(tmp_path):
    os.symlink("/etc", tmp_path / "out")
    art = collect(tmp_path)
    assert art.problems == ["the output directory was replaced; no results could be read"]
