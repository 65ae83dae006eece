"""Shared fixtures: the book is built once per test session and reused.

``built_book`` runs the same command as ``make book`` (``tools/build_book.py``: both editions,
each with ``jupyter-book build -W -n --keep-going``, and the landing page), but into a fresh
temporary folder: a fresh build reports every warning (an incremental one only re-reads changed
pages) and leaves the reader's ``_build`` alone. The build time is printed in the terminal
summary.

``CELIB_BOOK_OUTPUT=<folder>`` reuses a build made with ``tools/build_book.py --output <folder>``
instead (for working on the tests; its warnings are not known then).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from book_helpers import ROOT


@dataclass
class BuiltBook:
    html: Path  # the site: <tmp>/html (landing page, en/, zh/)
    returncode: int
    output: str  # stdout and stderr of tools/build_book.py (the editions' warnings)
    seconds: float

    @property
    def warnings(self):
        return [line for line in self.output.splitlines() if "WARNING" in line]

    def require_html(self):
        """The site; fail (not skip) a test that needs it when the build produced none.
        A build with warnings still yields a site (--keep-going): the other checks run on it,
        and test_build_succeeds reports the warnings."""
        if not (self.html / "index.html").is_file():
            tail = "\n".join(self.output.splitlines()[-30:])
            pytest.fail(
                f"the book did not build (exit {self.returncode}); see "
                f"test_book_build.py::test_build_succeeds. Last lines:\n{tail}"
            )
        return self.html


_BUILD_REPORT: list[str] = []


def _jupyter_book():
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else shutil.which("jupyter-book")


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    reuse = os.environ.get("CELIB_BOOK_OUTPUT")
    if reuse:
        html = Path(reuse) / "html"
        _BUILD_REPORT.append(f"book build: reused {html}")
        return BuiltBook(html=html, returncode=0, output="", seconds=0.0)
    out = tmp_path_factory.mktemp("book")
    if _jupyter_book() is None:
        pytest.fail("jupyter-book is not installed in this environment (pip install -e '.[book]')")
    cmd = [sys.executable, str(ROOT / "tools" / "build_book.py"), "--output", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace"
    )
    seconds = time.perf_counter() - start
    html = out / "html"
    size = sum(p.stat().st_size for p in html.rglob("*") if p.is_file()) if html.is_dir() else 0
    _BUILD_REPORT.append(
        f"book build: {seconds:.1f} s, exit {proc.returncode}, "
        f"site {size / 2**20:.1f} MiB in {html}"
    )
    print(_BUILD_REPORT[-1])
    return BuiltBook(
        html=html, returncode=proc.returncode, output=proc.stdout + proc.stderr, seconds=seconds
    )


def pytest_terminal_summary(terminalreporter):
    for line in _BUILD_REPORT:
        terminalreporter.write_line(line)
