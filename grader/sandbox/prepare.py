"""What every backend prepares the same way: the environment, the job dir's owner, the interpreter."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from grader.sandbox.model import Limits

log = logging.getLogger(__name__)

HOME = "/home/student"
# Our own packages that must never be importable inside, should the venv hold a non-editable install.
SECRET_PACKAGES = ("reference_solutions", "grader", "server")


def sandbox_env(limits: Limits, *, python_bin: str, home: str = HOME, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The whole environment of the sandboxed program: nothing is inherited from the grader."""
    threads = str(limits.threads)
    env = {
        "HOME": home,
        "PATH": f"{python_bin}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "IPYTHONDIR": f"{home}/.ipython",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "DGM_GRADING": "1",
    }
    env.update(extra)
    return env


# What the orchestrator keeps to start the student's kernel as another uid and to stop it: setuid and
# setgid, setpcap (to empty the kernel's bounding set) and kill. Everything else is dropped.
ORCHESTRATOR_CAPS = "+setuid,+setgid,+setpcap,+kill"


def drop_privileges(uid: int, *, keep: str = "") -> list[str]:
    """The `setpriv` prefix that runs a command as `uid` with no capabilities but `keep` (e.g. "+kill")."""
    caps = f"-all,{keep}" if keep else "-all"
    return [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}", "--no-new-privs", "--",
    ]  # fmt: skip


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give the job dir to the sandbox user, never following symlinks (it may hold earlier output)."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def grader_python() -> Path:
    """The interpreter `python` means for the bwrap and none backends: the grader's own venv's."""
    return Path(sys.executable)


def resolve_python(argv: Sequence[str], python: str) -> list[str]:
    """`argv` with a leading "python" replaced by the sandbox's interpreter."""
    return [python, *argv[1:]] if argv and argv[0] == "python" else list(argv)


def python_dirs() -> list[Path]:
    """Directories the interpreter needs, bound read-only at the same paths (pyvenv.cfg is absolute).

    /usr is bound anyway, so prefixes under it are left out.
    """
    dirs: list[Path] = []
    for prefix in (sys.base_prefix, sys.prefix):
        for p in (Path(prefix), Path(os.path.realpath(prefix))):
            if p not in dirs and not _under(p, Path("/usr")):
                dirs.append(p)
    return dirs


def site_packages(prefix: Path) -> list[Path]:
    return sorted({*prefix.glob("lib/python3*/site-packages"), *prefix.glob("lib64/python3*/site-packages")})


def secret_dirs(prefixes: list[Path] | None = None) -> list[Path]:
    """Installed copies of our own packages inside the bound prefixes, to be covered by a tmpfs."""
    found = []
    for prefix in prefixes if prefixes is not None else python_dirs():
        for sp in site_packages(prefix):
            found += [sp / name for name in SECRET_PACKAGES if (sp / name).is_dir()]
    if found:
        log.info("hiding installed packages inside the sandbox: %s", [str(p) for p in found])
    return found


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
