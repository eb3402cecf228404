"""A newcomer's machine: `make setup` works, or stops at once with the one command that fixes it.

The browser finder is tested on fake layouts of each system (a set of executable paths); the Python
checks run for real, through the Makefile, with a Python that lacks ensurepip and as a new user.
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_project import system_check
from dagster_project.settings import REPO_ROOT
from tests.helpers import copy_tracked_files

LINUX_PATH = "/usr/local/bin:/usr/bin:/bin"
MACOS_PATH = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin"
PLAYWRIGHT_LINUX = "/home/ann/.cache/ms-playwright"
PLAYWRIGHT_MACOS = "/Users/ann/Library/Caches/ms-playwright"
CHROME_FOR_TESTING_MAC = "Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing"
# Files make needs to build the venv; the Makefile's own `find jaffle_shop` needs the folder.
VENV_INPUTS = ("Makefile", "pyproject.toml", "uv.lock", "dagster_project/system_check.py")
PYTHON_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def find_in(layout: set[str], env: dict[str, str], platform: str) -> str | None:
    """The finder on a fake file system, where ``layout`` lists every executable file."""

    def list_dir(directory: str) -> set[str]:
        return {
            path[len(directory) + 1 :].split("/")[0] for path in layout if path.startswith(f"{directory}/")
        }

    return system_check.browser_path(env, platform, layout.__contains__, list_dir)


LAYOUTS = {
    "Debian's chromium package": (
        "linux",
        {"PATH": LINUX_PATH},
        {"/usr/bin/chromium", "/usr/lib/chromium/chromium"},
        "/usr/bin/chromium",
    ),
    "Ubuntu's chromium-browser": (
        "linux",
        {"PATH": LINUX_PATH},
        {"/usr/bin/chromium-browser"},
        "/usr/bin/chromium-browser",
    ),
    "Ubuntu's snap, with /snap/bin not on PATH": (
        "linux",
        {"PATH": LINUX_PATH},
        {"/snap/bin/chromium"},
        "/snap/bin/chromium",
    ),
    "Google Chrome's deb": (
        "linux",
        {"PATH": LINUX_PATH},
        {"/usr/bin/google-chrome-stable", "/opt/google/chrome/chrome"},
        "/usr/bin/google-chrome-stable",
    ),
    "macOS with Google Chrome": (
        "darwin",
        {"PATH": MACOS_PATH, "HOME": "/Users/ann"},
        {"/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"},
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    ),
    "macOS with Homebrew's Chromium cask": (
        "darwin",
        {"PATH": MACOS_PATH, "HOME": "/Users/ann"},
        {"/Applications/Chromium.app/Contents/MacOS/Chromium"},
        "/Applications/Chromium.app/Contents/MacOS/Chromium",
    ),
    "macOS with Chrome in the user's own Applications": (
        "darwin",
        {"PATH": MACOS_PATH, "HOME": "/Users/ann"},
        {"/Users/ann/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"},
        "/Users/ann/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    ),
    "Linux with Playwright's builds only: the newest": (
        "linux",
        {"PATH": LINUX_PATH, "HOME": "/home/ann"},
        {
            f"{PLAYWRIGHT_LINUX}/chromium-1097/chrome-linux/chrome",
            f"{PLAYWRIGHT_LINUX}/chromium-1200/chrome-linux64/chrome",
            f"{PLAYWRIGHT_LINUX}/chromium_headless_shell-1200/chrome-linux/headless_shell",
        },
        f"{PLAYWRIGHT_LINUX}/chromium-1200/chrome-linux64/chrome",
    ),
    "macOS with Playwright's Chrome for Testing": (
        "darwin",
        {"PATH": MACOS_PATH, "HOME": "/Users/ann"},
        {f"{PLAYWRIGHT_MACOS}/chromium-1200/chrome-mac-arm64/{CHROME_FOR_TESTING_MAC}"},
        f"{PLAYWRIGHT_MACOS}/chromium-1200/chrome-mac-arm64/{CHROME_FOR_TESTING_MAC}",
    ),
    "Playwright's builds where PLAYWRIGHT_BROWSERS_PATH puts them": (
        "linux",
        {"PATH": LINUX_PATH, "HOME": "/home/ann", "PLAYWRIGHT_BROWSERS_PATH": "/opt/pw"},
        {
            "/opt/pw/chromium-1200/chrome-linux64/chrome",
            f"{PLAYWRIGHT_LINUX}/chromium-1300/chrome-linux64/chrome",
        },
        "/opt/pw/chromium-1200/chrome-linux64/chrome",
    ),
    "CHROME_PATH, before a Chromium on PATH": (
        "linux",
        {"PATH": LINUX_PATH, "CHROME_PATH": "/opt/my/chrome"},
        {"/opt/my/chrome", "/usr/bin/chromium"},
        "/opt/my/chrome",
    ),
    "a Chromium on PATH, before snap's and Playwright's": (
        "linux",
        {"PATH": f"/home/ann/bin:{LINUX_PATH}", "HOME": "/home/ann"},
        {
            "/home/ann/bin/chromium",
            "/snap/bin/chromium",
            f"{PLAYWRIGHT_LINUX}/chromium-1200/chrome-linux64/chrome",
        },
        "/home/ann/bin/chromium",
    ),
    "a macOS app on a Linux machine's disk is not Linux's": (
        "linux",
        {"PATH": LINUX_PATH},
        {"/Applications/Chromium.app/Contents/MacOS/Chromium"},
        None,
    ),
    "CHROME_PATH pointing at nothing: no silent fallback": (
        "linux",
        {"PATH": LINUX_PATH, "CHROME_PATH": "/opt/gone/chrome"},
        {"/usr/bin/chromium"},
        None,
    ),
}


@pytest.mark.parametrize(("platform", "env", "layout", "expected"), LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_browser_finder_picks_the_browser_each_system_layout_holds(platform, env, layout, expected):
    assert find_in(layout, env, platform) == expected


HINTS = {
    "Debian or Ubuntu, ordinary user": (
        "linux",
        "apt-get",
        False,
        "install it with 'sudo apt-get install chromium' (on Ubuntu: 'sudo snap install chromium')",
    ),
    "Fedora, root": ("linux", "dnf", True, "install it with 'dnf install chromium'"),
    "macOS": ("darwin", None, False, "install it with 'brew install --cask chromium' (or Google Chrome"),
}


@pytest.mark.parametrize(("platform", "manager", "is_root", "command"), HINTS.values(), ids=HINTS.keys())
def test_without_a_browser_the_one_line_names_the_install_command_for_the_system(
    platform, manager, is_root, command
):
    hint = system_check.browser_hint({}, platform, manager, is_root)

    assert command in hint
    assert "set CHROME_PATH to one, then run 'make test' again." in hint
    assert "\n" not in hint


def test_a_chrome_path_that_is_not_a_browser_is_named_in_the_hint():
    hint = system_check.browser_hint({"CHROME_PATH": "/opt/gone/chrome"}, "linux", "apt-get", False)

    assert hint.startswith("CHROME_PATH is /opt/gone/chrome, which is not an executable file")


def test_the_python_range_is_the_one_the_lock_was_made_for():
    supported = system_check.supported_pythons((REPO_ROOT / "pyproject.toml").read_text())
    lock = (REPO_ROOT / "uv.lock").read_text()

    assert supported == ((3, 11), (3, 14))
    assert 'requires-python = ">=3.11, <3.14"' in lock


PYTHON_FIXES = {
    "Python 3.14 from Homebrew": (
        (3, 14),
        "darwin",
        None,
        "Install one with 'brew install python@3.13', then run 'make setup PYTHON=python3.13'.",
    ),
    "Python 3.10 on Ubuntu, ordinary user": (
        (3, 10),
        "linux",
        "apt-get",
        "Install one with 'sudo apt-get install python3.13 python3.13-venv', then run 'make setup PYTHON=python3.13'.",
    ),
    "Python 3.14 on Fedora": (
        (3, 14),
        "linux",
        "dnf",
        "Install one with 'sudo dnf install python3.13', then run 'make setup PYTHON=python3.13'.",
    ),
}


@pytest.mark.parametrize(
    ("version", "platform", "manager", "fix"), PYTHON_FIXES.values(), ids=PYTHON_FIXES.keys()
)
def test_a_python_outside_the_range_is_told_which_pythons_work_and_how_to_get_one(
    version, platform, manager, fix
):
    problem = system_check.python_problem(version, True, ((3, 11), (3, 14)), platform, manager, False)

    assert problem == (
        f"Python {version[0]}.{version[1]} cannot run this project: it needs Python 3.11 to 3.13, the range "
        f"dagster-dbt 0.29.27 (requires Python <3.14) and the lock allow. {fix}"
    )


def make_venv_with(tmp_path: Path, sitecustomize: str) -> subprocess.CompletedProcess:
    """`make .venv/.synced` in a copy of the project, with a `python3` that runs ``sitecustomize`` first.

    The stub sets PYTHONPATH, so the Makefile's check meets what a Debian Python without python3-venv
    is. (`python3 -m venv` drops PYTHONPATH for the venv's own Python, so the failure Debian's venv then
    meets, with a venv left behind without pip, is simulated on its own, in `_setup_pip`.)
    """
    project = tmp_path / "project"
    for name in VENV_INPUTS:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, project / name)
    (project / "jaffle_shop").mkdir()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(sitecustomize)
    stub = tmp_path / "bin" / "python3"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {base_python()} "$@"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}:{LINUX_PATH}", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return subprocess.run(
        ["make", ".venv/.synced"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def base_python() -> str:
    """The system Python the test venv was made from: the one `make setup` would find."""
    return shutil.which(f"python{PYTHON_VERSION}", path=LINUX_PATH) or pytest.skip(
        f"no python{PYTHON_VERSION} on {LINUX_PATH} to stand in for the system's python3"
    )


def messages(result: subprocess.CompletedProcess) -> list[str]:
    """What the user reads on stderr, besides make's own line saying which target failed."""
    return [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]


def test_a_python_without_ensurepip_stops_with_the_one_line_fix_and_leaves_no_venv(tmp_path: Path):
    result = make_venv_with(tmp_path, "import sys\nsys.modules['ensurepip'] = None\n")

    sudo = "" if os.geteuid() == 0 else "sudo "
    assert result.returncode != 0
    assert messages(result) == [
        f"Python {PYTHON_VERSION} cannot create the project's venv: its ensurepip module is missing. "
        f"Run '{sudo}apt-get install python{PYTHON_VERSION}-venv', then run the same make command again."
    ]
    assert not (tmp_path / "project" / ".venv").exists()


def test_python_3_14_stops_with_which_pythons_work_before_any_venv_is_made(tmp_path: Path):
    result = make_venv_with(tmp_path, "import sys\nsys.version_info = (3, 14, 0, 'final', 0)\n")

    assert result.returncode != 0
    [message] = messages(result)
    assert message.startswith("Python 3.14 cannot run this project: it needs Python 3.11 to 3.13")
    assert message.endswith("then run 'make setup PYTHON=python3.13'.")
    assert not (tmp_path / "project" / ".venv").exists()


@pytest.fixture
def ordinary_user() -> Iterator[str]:
    """A new user with a home of their own, removed with it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a temporary ordinary user needs root; run as root to test set-up as one")
    if not (shutil.which("useradd") and shutil.which("runuser")):
        pytest.skip("useradd and runuser (util-linux) are needed to test set-up as an ordinary user")
    name = f"jaffle-{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "--remove", name], check=True, timeout=60, capture_output=True)


@pytest.fixture
def fresh_checkout(ordinary_user: str) -> Iterator[Path]:
    """The files git tracks, as a clone would have them, owned by the ordinary user."""
    # Not under pytest's tmp_path: /tmp/pytest-of-root is root's alone.
    root = Path(tempfile.mkdtemp(prefix="jaffle-newcomer-"))
    try:
        copy_tracked_files(root)
        subprocess.run(["chown", "-R", f"{ordinary_user}:", str(root)], check=True, timeout=60)
        root.chmod(0o755)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_ordinary_user_builds_the_venv_in_a_fresh_checkout_or_gets_the_one_line_fix(
    ordinary_user: str, fresh_checkout: Path
):
    """The checking part of `make setup`, as a new user: the Python check, then the venv with pip.

    The rest of `make setup` installs every locked package into the new user's empty uv cache: minutes,
    and network, so not here (README's "Supported systems" says it was run by hand).
    """
    home = f"/home/{ordinary_user}"
    as_user = ["runuser", "-u", ordinary_user, "--", "env", "-i", f"HOME={home}", f"PATH={LINUX_PATH}"]
    result = subprocess.run(
        [*as_user, "make", "-C", str(fresh_checkout), ".venv/bin/python"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )

    venv_python = fresh_checkout / ".venv" / "bin" / "python"
    if result.returncode == 0:
        pip = subprocess.run(
            ["runuser", "-u", ordinary_user, "--", str(venv_python), "-m", "pip", "--version"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pip.returncode == 0, pip.stderr
        assert (fresh_checkout / ".venv").stat().st_uid == int(
            subprocess.run(["id", "-u", ordinary_user], capture_output=True, text=True, check=True).stdout
        )
    else:
        [message] = messages(result)
        assert re.fullmatch(r"Python 3\.\d+ cannot .*, then run .*\.", message), message
        assert not venv_python.parent.parent.exists()


# What Debian's `python3 -m venv` does without python3-venv, once past the check: the venv's folder and
# Python are made, then installing pip into it fails.
FAILING_ENSUREPIP = """
import subprocess, venv

def _setup_pip(self, context):
    raise subprocess.CalledProcessError(1, [context.env_exec_cmd, "-m", "ensurepip"])

venv.EnvBuilder._setup_pip = _setup_pip
"""


def test_a_venv_that_fails_half_way_is_removed_so_the_next_make_starts_over(tmp_path: Path):
    result = make_venv_with(tmp_path, FAILING_ENSUREPIP)

    assert result.returncode != 0
    assert "ensurepip" in result.stderr
    assert not (tmp_path / "project" / ".venv").exists()


@pytest.mark.parametrize(
    ("java", "version_output", "platform", "manager", "is_root", "fix"),
    [
        (None, "", "linux", "apt-get", True, "'apt-get install openjdk-17-jre-headless'"),
        (None, "", "linux", "apt-get", False, "'sudo apt-get install openjdk-17-jre-headless'"),
        ("/usr/bin/java", 'java version "1.8.0_301"', "linux", "dnf", False, "'sudo dnf install java-17"),
        ("/usr/bin/java", 'openjdk version "11.0.2"', "darwin", None, False, "'brew install openjdk@17'"),
    ],
)
def test_spark_without_java_17_is_told_the_install_command_for_the_system(
    java, version_output, platform, manager, is_root, fix
):
    problem = system_check.java_problem(java, version_output, platform, manager, is_root)
    assert problem.startswith("Spark needs Java 17 or newer and ")
    assert fix in problem
    if java:
        assert java in problem


@pytest.mark.parametrize(
    "version_output", ['openjdk version "17.0.15" 2025-04-15', 'openjdk version "21" 2023']
)
def test_java_17_or_newer_runs_spark(version_output):
    assert system_check.java_problem("/usr/bin/java", version_output, "linux", "apt-get", True) is None
