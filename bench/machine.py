"""What the numbers were measured on: CPU model, cores, memory, load, software versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def _debian_package(name: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def _package(name: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cryptography_openssl() -> str | None:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        return backend.openssl_version_text()
    except Exception:  # an unusual build: the version is nice to have, not essential
        return None


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict:
    return {
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_at_start": load(),
        "versions": {
            "softhsm2": _version(["softhsm2-util", "--version"]),
            "openssl_cli": _version(["openssl", "version"]),
            "openssl_in_cryptography": _cryptography_openssl(),
            "wrk": (_version(["wrk", "--version"]) or " ").split()[1] if shutil.which("wrk") else None,
            "p11-kit": _debian_package("p11-kit"),
            "sqlite": __import__("sqlite3").sqlite_version,
            "python-pkcs11": _package("python-pkcs11"),
            "cryptography": _package("cryptography"),
            "flask": _package("flask"),
            "gunicorn": _package("gunicorn"),
        },
    }
