"""Shared helpers for benchmark scripts: machine description and result files.

Every benchmark writes

* a section of ``benchmarks/RESULTS.md`` between ``<!-- BEGIN name -->`` and
  ``<!-- END name -->`` (replaced on each run, appended the first time), stamped
  with the date and the machine it ran on, and
* its raw numbers as ``benchmarks/results/<name>.json``.

Both files are written atomically (temporary file + ``os.replace``) under an
advisory lock, so two benchmarks finishing together do not lose each other's
sections.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_JSON_DIR = BENCH_DIR / "results"
_LOCK_PATH = BENCH_DIR / ".cache" / "results.lock"  # .cache/ is git-ignored

_TITLE = "# Benchmark results\n\nEach section is rewritten by the script named in it.\n"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

# distribution names to try for each module whose version we report
_PACKAGES = {
    "numpy": ("numpy",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss"),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"),
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _version(module: str) -> str | None:
    """Installed version, from package metadata (nothing is imported)."""
    for dist in _PACKAGES.get(module, (module,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    loaded = sys.modules.get(module)
    return getattr(loaded, "__version__", None)


def machine_description() -> str:
    """One line: CPU model, cores, RAM, OS, Python and library versions."""
    parts = [_cpu_model(), f"{_usable_cores()} cores"]
    ram = _ram_gib()
    if ram is not None:
        parts.append(f"{ram:.0f} GiB RAM")
    parts.append(platform.platform(terse=True))
    parts.append(f"Python {platform.python_version()}")
    for module in ("numpy", "faiss", "tensorflow"):
        version = _version(module)
        if version:
            parts.append(f"{module} {version}")
    return ", ".join(parts)


@contextlib.contextmanager
def _locked():
    try:
        import fcntl
    except ImportError:  # no advisory locks here; atomic replace still holds
        yield
        return
    _LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"section name must match {_NAME_RE.pattern}, got {name!r}")


def write_section(name: str, markdown_body: str, path: Path | None = None, stored: dict | None = None) -> Path:
    """Replace (or append) section ``name`` of ``benchmarks/RESULTS.md``.

    The section is stamped with today's date and :func:`machine_description`,
    or, when it is re-rendered from a stored result file (``stored``: that
    file's payload), with the date and machine of the run that produced it;
    the rest of the file is left byte for byte as it was.
    """
    _check_name(name)
    path = Path(path) if path is not None else RESULTS_MD
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if stored is not None:
        stamp = f"_Run {stored['date'][:10]} on: {stored['machine']}_"
    else:
        stamp = f"_Run {_dt.date.today().isoformat()} on: {machine_description()}_"
    section = f"{begin}\n{stamp}\n\n{markdown_body.strip()}\n{end}"

    with _locked():
        text = path.read_text(encoding="utf-8") if path.exists() else _TITLE
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        _atomic_write(path, text)
    return path


def write_json(name: str, data, directory: Path | None = None) -> Path:
    """Write ``data`` as ``benchmarks/results/<name>.json`` (atomically)."""
    _check_name(name)
    path = Path(directory or RESULTS_JSON_DIR) / f"{name}.json"
    payload = {
        "name": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "results": data,
    }
    with _locked():
        _atomic_write(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub-flavoured markdown table from a list of dicts."""
    if not rows:
        return ""
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)
