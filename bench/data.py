"""The generated data for one scale, made once and reused by later benchmarks of that scale."""

import hashlib
import json
import shutil
from pathlib import Path

from dagster_project.cli import datagen

SEED = 0
MARKER = "generated.json"


def ensure_data(scale: int, data_root: Path) -> Path:
    """The folder holding the raw CSV files for `scale`, generating them if needed."""
    folder = data_root / f"scale-{scale}"
    wanted = {"scale": scale, "seed": SEED, "generator": generator_fingerprint()}
    marker = folder / MARKER
    if marker.exists() and json.loads(marker.read_text()).items() >= wanted.items():
        return folder
    # Whatever is there is partial or from another generator: start clean.
    shutil.rmtree(folder, ignore_errors=True)
    rows = datagen.generate(scale, folder, SEED)
    # Written last, so an interrupted generation is never mistaken for a finished one.
    marker.write_text(json.dumps({**wanted, "rows": rows}, indent=2) + "\n")
    return folder


def generated_rows(folder: Path) -> dict[str, int]:
    return json.loads((folder / MARKER).read_text())["rows"]


def csv_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.csv"))


def generator_fingerprint() -> str:
    """Changes whenever datagen.py does, so data from an older generator is not reused."""
    return hashlib.sha256(Path(datagen.__file__).read_bytes()).hexdigest()[:16]
