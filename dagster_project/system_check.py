"""What `make setup` and `make test` need from the machine, and the one command that gets it.

`make` runs this file with the system's `python3`, before the venv exists, so it imports only the
standard library and parses on old Pythons (no `match`, no `X | Y` at run time). It is run as a file
(`python3 dagster_project/system_check.py python`), never with `-I` or `-E`: the test of a Python
without ensurepip hides that module through PYTHONPATH, as a Debian Python without python3-venv would.

    python   exits 1 with one line on stderr when this Python cannot build the project's venv
    browser  prints the Chromium or Chrome the browser test drives, or exits 1 with how to get one
    java     prints the Java that runs Spark, or exits 1 with how to get Java 17 or newer
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# Shown in the refusal, so that a user on Python 3.14 knows it is not this project's choice.
NEWEST_PYTHON_BOUND_BY = "dagster-dbt 0.29.27 (requires Python <3.14)"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
# Where snap puts Chromium: on Ubuntu, /snap/bin is not on PATH in every shell (cron, ssh commands).
SNAP_CHROMIUM = "/snap/bin/chromium"
MACOS_APPS = (
    "Google Chrome.app/Contents/MacOS/Google Chrome",
    "Chromium.app/Contents/MacOS/Chromium",
)
# Playwright's own builds, per `playwright install chromium`: Chrome for Testing since 1.57,
# Chromium before it. Listed so that a user who installed one is not asked to install another.
# Spark 4 runs on Java 17 and 21; Debian 12 packages 17 as a headless runtime.
OLDEST_JAVA = 17
JAVA_PACKAGE = "openjdk-17-jre-headless"
PLAYWRIGHT_BUILDS = {
    "linux": ("chrome-linux64/chrome", "chrome-linux-arm64/chrome", "chrome-linux/chrome"),
    "darwin": (
        "chrome-mac-arm64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
        "chrome-mac-x64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
        "chrome-mac/Chromium.app/Contents/MacOS/Chromium",
    ),
}


def supported_pythons(pyproject_text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The oldest supported and the first unsupported Python, from `requires-python = ">=3.11,<3.14"`."""
    match = re.search(r'requires-python\s*=\s*">=\s*3\.(\d+)\s*,\s*<\s*3\.(\d+)"', pyproject_text)
    if match is None:
        raise ValueError(f'{PYPROJECT}: expected requires-python = ">=3.X,<3.Y"')
    return (3, int(match.group(1))), (3, int(match.group(2)))


def sudo(is_root: bool) -> str:
    return "" if is_root else "sudo "


def for_system(
    platform: str, package_manager: str | None, *, brew: str, apt: str, dnf: str, other: str
) -> str:
    """The one of these that fits the system: macOS (Homebrew), apt-get, dnf, or anything else."""
    if platform == "darwin":
        return brew
    if package_manager == "apt-get":
        return apt
    if package_manager == "dnf":
        return dnf
    return other


def python_problem(
    version: tuple[int, int],
    has_ensurepip: bool,
    supported: tuple[tuple[int, int], tuple[int, int]],
    platform: str,
    package_manager: str | None,
    is_root: bool,
) -> str | None:
    """Why this Python cannot build the venv, with the command that fixes it; None when it can."""
    (oldest, first_unsupported) = supported
    if not oldest <= version < first_unsupported:
        newest = f"3.{first_unsupported[1] - 1}"
        get = for_system(
            platform,
            package_manager,
            brew=f"brew install python@{newest}",
            apt=f"{sudo(is_root)}apt-get install python{newest} python{newest}-venv",
            dnf=f"{sudo(is_root)}dnf install python{newest}",
            other=f"uv python install {newest}",
        )
        return (
            f"Python {version[0]}.{version[1]} cannot run this project: it needs Python "
            f"3.{oldest[1]} to {newest}, the range {NEWEST_PYTHON_BOUND_BY} and the lock allow. "
            f"Install one with '{get}', then run 'make setup PYTHON=python{newest}'."
        )
    if not has_ensurepip:
        # Debian and Ubuntu split ensurepip out of the standard library into pythonX.Y-venv.
        package = f"python{version[0]}.{version[1]}-venv"
        fix = (
            f"{sudo(is_root)}apt-get install {package}"
            if package_manager == "apt-get"
            else f"install your system's {package} package"
        )
        return (
            f"Python {version[0]}.{version[1]} cannot create the project's venv: its ensurepip module "
            f"is missing. Run '{fix}', then run the same make command again."
        )
    return None


def browser_path(
    env: Mapping[str, str],
    platform: str,
    is_executable: Callable[[str], bool],
    list_dir: Callable[[str], Iterable[str]],
) -> str | None:
    """The Chromium or Chrome to drive, wherever this system put it; None when there is none.

    In order: CHROME_PATH, the names on PATH, snap's, the macOS apps, then Playwright's newest build.
    """
    if chrome_path := env.get("CHROME_PATH"):
        return chrome_path if is_executable(chrome_path) else None
    for name in BROWSER_NAMES:
        for directory in env.get("PATH", "").split(os.pathsep):
            if directory and is_executable(candidate := f"{directory}/{name}"):
                return candidate
    candidates = []
    if platform == "linux":
        candidates.append(SNAP_CHROMIUM)
    if platform == "darwin":
        for applications in ("/Applications", f"{env.get('HOME', '')}/Applications"):
            candidates.extend(f"{applications}/{app}" for app in MACOS_APPS)
    candidates.extend(playwright_builds(env, platform, list_dir))
    return next((candidate for candidate in candidates if is_executable(candidate)), None)


def playwright_builds(
    env: Mapping[str, str], platform: str, list_dir: Callable[[str], Iterable[str]]
) -> list[str]:
    """Playwright's Chromium builds, newest first: its cache holds one `chromium-<revision>` each."""
    home = env.get("HOME", "")
    default = (
        f"{home}/Library/Caches/ms-playwright" if platform == "darwin" else f"{home}/.cache/ms-playwright"
    )
    cache = env.get("PLAYWRIGHT_BROWSERS_PATH") or default
    revisions = [entry for entry in list_dir(cache) if re.fullmatch(r"chromium-\d+", entry)]
    revisions.sort(key=lambda entry: int(entry.split("-")[1]), reverse=True)
    return [
        f"{cache}/{revision}/{build}"
        for revision in revisions
        for build in PLAYWRIGHT_BUILDS.get(platform, ())
    ]


def browser_hint(env: Mapping[str, str], platform: str, package_manager: str | None, is_root: bool) -> str:
    """The one line to show when no browser was found: the install command for this system."""
    if chrome_path := env.get("CHROME_PATH"):
        return (
            f"CHROME_PATH is {chrome_path}, which is not an executable file: point it at a Chromium or "
            "Chrome (or unset it), then run 'make test' again."
        )
    install = for_system(
        platform,
        package_manager,
        brew="'brew install --cask chromium' (or Google Chrome from google.com/chrome)",
        apt=f"'{sudo(is_root)}apt-get install chromium' (on Ubuntu: '{sudo(is_root)}snap install chromium')",
        dnf=f"'{sudo(is_root)}dnf install chromium'",
        other="your system's package manager (the package is usually 'chromium')",
    )
    return (
        f"The browser test needs Chromium or Chrome and found none: install it with {install}, "
        "or set CHROME_PATH to one, then run 'make test' again."
    )


def java_major(version_output: str) -> int | None:
    """The major version from `java -version`: 'openjdk version "17.0.15"' or, before Java 9, "1.8.0"."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_problem(
    java: str | None, version_output: str, platform: str, package_manager: str | None, is_root: bool
) -> str | None:
    """Why Spark cannot run on this machine's Java, with the command that fixes it; None when it can."""
    if java is not None and (java_major(version_output) or 0) >= OLDEST_JAVA:
        return None
    install = for_system(
        platform,
        package_manager,
        brew=f"'brew install openjdk@{OLDEST_JAVA}'",
        apt=f"'{sudo(is_root)}apt-get install {JAVA_PACKAGE}'",
        dnf=f"'{sudo(is_root)}dnf install java-{OLDEST_JAVA}-openjdk-headless'",
        other=f"your system's package manager (a Java {OLDEST_JAVA} or newer runtime)",
    )
    found = "found none on PATH" if java is None else f"found {java}: {version_output.strip()[:80]!r}"
    return (
        f"Spark needs Java {OLDEST_JAVA} or newer and {found}: install it with {install}, "
        "then run the same make command again."
    )


def java_version_output(java: str) -> str:
    try:
        completed = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stderr + completed.stdout  # java prints its version on stderr


def has_ensurepip() -> bool:
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        return False
    return True


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def list_dir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def package_manager() -> str | None:
    return next((name for name in ("apt-get", "dnf") if shutil.which(name)), None)


def main(argv: list[str]) -> int:
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if argv == ["python"]:
        problem = python_problem(
            sys.version_info[:2],
            has_ensurepip(),
            supported_pythons(PYPROJECT.read_text()),
            sys.platform,
            package_manager(),
            is_root,
        )
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    if argv == ["browser"]:
        if path := browser_path(os.environ, sys.platform, is_executable, list_dir):
            print(path)
            return 0
        print(browser_hint(os.environ, sys.platform, package_manager(), is_root), file=sys.stderr)
        return 1
    if argv == ["java"]:
        java = shutil.which("java")
        output = java_version_output(java) if java else ""
        if problem := java_problem(java, output, sys.platform, package_manager(), is_root):
            print(problem, file=sys.stderr)
            return 1
        print(java)
        return 0
    print(f"usage: {sys.argv[0]} python|browser|java", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
