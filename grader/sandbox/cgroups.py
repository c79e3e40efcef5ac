"""One cgroup per sandboxed run: memory, pids and CPU limits, the OOM verdict and a reliable kill.

cgroup v2 (`memory.max`, `memory.swap.max`, `pids.max`, `cpu.max`, `memory.events`, `memory.peak`,
`cgroup.kill`) is used where the unified hierarchy has the memory and pids controllers; otherwise
cgroup v1 (`memory.limit_in_bytes` + `memory.memsw.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`,
`memory.oom_control`, `memory.max_usage_in_bytes`). On a hybrid host (v1 controllers plus an empty
v2 tree, as on our machines) a controller-less v2 child is added only for its atomic `cgroup.kill`.

Each run gets a child of the caller's own cgroup (from /proc/self/cgroup), removed afterwards. The
process joins it from `preexec_fn` before exec, so everything it starts is inside from the beginning.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from grader.sandbox.model import CgroupStats, Limits

log = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000
NAME_PREFIX = "dgm-sbx-"
_counter = itertools.count()
_swept: set[Path] = set()


class CgroupError(OSError):
    """A cgroup could not be created or configured; the caller falls back to rlimits."""


@dataclass(frozen=True)
class CgroupLayout:
    """Where the caller's own cgroup lives: `dirs` maps controller (or "unified") to a directory."""

    version: int
    dirs: dict[str, Path]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _controllers(directory: Path) -> set[str]:
    try:
        return set((directory / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def discover(mountinfo: str, proc_cgroup: str) -> CgroupLayout | None:
    """Find the caller's cgroup directories from the text of /proc/self/{mountinfo,cgroup}.

    A hierarchy can be mounted from a sub-path (the mountinfo root field, e.g. inside a
    container), so the directory is mountpoint / (cgroup path relative to the mount root).
    """
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier_id, controllers, path = parts
        if hier_id == "0" and controllers == "":
            paths["unified"] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path

    dirs: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        fstype, superopts = tail[0], tail[2].split(",")
        if fstype not in ("cgroup", "cgroup2"):
            continue
        keys = ["unified"] if fstype == "cgroup2" else [o for o in superopts if o in paths]
        for key in keys:
            cg_path = paths.get(key)
            if cg_path is None or key in dirs:
                continue
            rel = os.path.relpath(cg_path, root)
            if rel.startswith(".."):
                continue  # our cgroup is outside what this mount shows
            dirs[key] = Path(mountpoint) / ("" if rel == "." else rel)

    unified = dirs.get("unified")
    if unified is not None and {"memory", "pids"} <= _controllers(unified):
        return CgroupLayout(version=2, dirs={"unified": unified})
    if "memory" in dirs and "pids" in dirs:
        v1: dict[str, Path] = {k: dirs[k] for k in ("memory", "pids", "cpu", "unified") if k in dirs}
        return CgroupLayout(version=1, dirs=v1)
    return None


@cache
def host_layout() -> CgroupLayout | None:
    """The layout of this process, discovered once per process."""
    try:
        layout = discover(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        log.warning("cannot read cgroup information: %s", exc)
        return None
    log.info("cgroup layout: %s", layout)
    return layout


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _write_optional(path: Path, value: str) -> bool:
    try:
        _write(path, value)
    except OSError as exc:
        log.debug("optional cgroup setting %s=%s not applied: %s", path, value, exc)
        return False
    return True


def _read_keyed(path: Path, key: str) -> int:
    """The value of `key N` in a flat-keyed file (memory.events, pids.events, memory.oom_control)."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return 0


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(parent: Path) -> None:
    """Remove leftovers of grader processes that died without cleaning up (once per parent)."""
    if parent in _swept:
        return
    _swept.add(parent)
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = re.fullmatch(rf"{NAME_PREFIX}(\d+)-.*", entry.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                entry.rmdir()
                log.info("removed stale cgroup %s", entry)


class Cgroup:
    """A child cgroup created for one run. Use `create`, then `remove` in a finally block."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # the child's directories, same keys as the layout

    @classmethod
    def create(cls, layout: CgroupLayout, limits: Limits, name: str | None = None) -> Cgroup:
        """Create and configure the child cgroup; raise `CgroupError` (nothing left behind) on failure."""
        name = name or f"{NAME_PREFIX}{os.getpid()}-{next(_counter)}-{secrets.token_hex(3)}"
        group = cls(layout.version, {})
        try:
            if layout.version == 2:
                parent = layout.dirs["unified"]
                _enable_controllers(parent)
                group._mkdir("unified", parent, name)
                group._configure_v2(limits, cpu="cpu" in _controllers(parent))
            else:
                for key, parent in layout.dirs.items():
                    if key == "unified":
                        # Only for cgroup.kill on a hybrid host: nice to have, never required.
                        with contextlib.suppress(OSError):
                            group._mkdir(key, parent, name)
                    else:
                        group._mkdir(key, parent, name)
                group._configure_v1(limits)
        except OSError as exc:
            group.remove()
            raise CgroupError(f"cannot set up cgroup {name}: {exc}") from exc
        return group

    def _mkdir(self, key: str, parent: Path, name: str) -> None:
        _sweep_stale(parent)
        child = parent / name
        child.mkdir()
        self.dirs[key] = child

    def _configure_v2(self, limits: Limits, *, cpu: bool) -> None:
        d = self.dirs["unified"]
        _write(d / "memory.max", str(limits.memory_bytes))
        _write_optional(d / "memory.swap.max", "0")
        _write_optional(d / "memory.oom.group", "1")  # an OOM kills the whole job, not one process
        _write(d / "pids.max", str(limits.pids))
        if cpu:
            _write(d / "cpu.max", f"{_quota_us(limits.cpus)} {CPU_PERIOD_US}")

    def _configure_v1(self, limits: Limits) -> None:
        mem = self.dirs["memory"]
        _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
        # memsw (memory + swap) must be >= the memory limit, so it is written second.
        _write_optional(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        _write(self.dirs["pids"] / "pids.max", str(limits.pids))
        if "cpu" in self.dirs:
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(_quota_us(limits.cpus)))

    @property
    def _main(self) -> Path:
        return self.dirs["unified"] if self.version == 2 else self.dirs["memory"]

    def procs_files(self) -> list[str]:
        """The cgroup.procs files a new process must join (one per v1 hierarchy)."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self._main / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def oom_killed(self) -> bool:
        if self.version == 2:
            return _read_keyed(self._main / "memory.events", "oom_kill") > 0
        return _read_keyed(self._main / "memory.oom_control", "oom_kill") > 0

    def peak_memory(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        return _read_int(self._main / name)

    def pids_limit_hit(self) -> bool:
        d = self.dirs["unified"] if self.version == 2 else self.dirs["pids"]
        return _read_keyed(d / "pids.events", "max") > 0

    def stats(self) -> CgroupStats:
        return CgroupStats(self.oom_killed(), self.peak_memory(), self.pids_limit_hit())

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup and reap the ones that are our children.

        `cgroup.kill` (v2, kernel 5.14+) kills atomically, so a fork bomb cannot outrun it; the
        fallback loop re-reads the member list until it is empty (pids.max bounds the race).
        Returns True when the cgroup is empty.
        """
        unified = self.dirs.get("unified")
        if unified is not None and (unified / "cgroup.kill").exists():
            _write_optional(unified / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout_s
        while True:
            alive = []
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                # Reparented zombies are ours to reap only if we are a subreaper or PID 1.
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        continue
                alive.append(pid)
            if not alive:
                return True
            if time.monotonic() > deadline:
                log.warning("cgroup %s still has processes after kill: %s", self._main, alive[:10])
                return False
            time.sleep(0.02)

    def remove(self) -> None:
        """Remove the child directories (retrying briefly while the kernel finishes exits)."""
        for key, d in list(self.dirs.items()):
            for attempt in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if attempt == 49:
                        log.warning("cannot remove cgroup %s: %s", d, exc)
                    time.sleep(0.02)
            del self.dirs[key]


def _quota_us(cpus: float) -> int:
    return max(1000, int(cpus * CPU_PERIOD_US))


def _enable_controllers(parent: Path) -> None:
    """Make sure memory and pids (and cpu where offered) are delegated to our children (v2).

    This fails with EBUSY when the parent has processes of its own and is not the root ("no
    internal processes"); then the caller falls back to rlimits and says so.
    """
    available = _controllers(parent)
    wanted = {"memory", "pids"} | ({"cpu"} & available)
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError:
        enabled = set()
    missing = sorted(wanted - enabled)
    if missing:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


_warned = False


def open_cgroup(limits: Limits, layout: CgroupLayout | None = None) -> Cgroup | None:
    """A configured child cgroup for one run, or None (rlimits only) when cgroups are unusable."""
    global _warned
    layout = layout if layout is not None else host_layout()
    if layout is None:
        if not _warned:
            log.warning("no usable cgroup hierarchy: limits fall back to rlimits (degraded)")
            _warned = True
        return None
    try:
        return Cgroup.create(layout, limits)
    except CgroupError as exc:
        if not _warned:
            log.warning("%s; limits fall back to rlimits (degraded)", exc)
            _warned = True
        return None
