"""Run the benchmarks (all, or one by name), collect the JSON each prints as its last line, and
write benchmarks/results/latest.json and latest.md.

    make bench             # every benchmarks/*.py except this runner and _helpers
    make bench NAME=api_requests
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def scripts(name: str | None) -> list[Path]:
    found = sorted(
        p for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_")
    )
    if name:
        found = [p for p in found if p.stem == name]
        if not found:
            raise SystemExit(
                f"no benchmark named {name!r}; have: {[p.stem for p in scripts(None)]}"
            )
    return found


def run(script: Path) -> dict[str, Any]:
    print(f"== {script.stem}", flush=True)
    # From the repository root: Celery's Django fixup puts the working directory first on
    # sys.path, and benchmarks/ledger.py would otherwise shadow the ledger package.
    result = subprocess.run(
        [sys.executable, str(script)], cwd=HERE.parent, capture_output=True, text=True, check=False
    )
    sys.stderr.write(result.stderr[-4000:] if result.returncode else "")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode or not lines:
        raise SystemExit(f"{script.stem} failed with exit code {result.returncode}")
    figures: dict[str, Any] = json.loads(lines[-1])
    print(lines[-1], flush=True)
    return figures


def markdown(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| benchmark | figure | value |", "|---|---|---|"]
    for name, figures in results.items():
        for key, value in figures.items():
            if key not in {"benchmark", "machine"}:
                rows.append(f"| {name} | {key} | {value} |")
    machines = {json.dumps(f.get("machine"), sort_keys=True) for f in results.values()}
    return "\n".join(rows) + "\n\nMachine: " + "; ".join(sorted(machines)) + "\n"


def main(argv: list[str]) -> None:
    name = argv[1] if len(argv) > 1 and argv[1] else None
    RESULTS.mkdir(exist_ok=True)
    latest = RESULTS / "latest.json"
    results: dict[str, dict[str, Any]] = json.loads(latest.read_text()) if latest.exists() else {}
    for script in scripts(name):
        results[script.stem] = run(script)
    latest.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (RESULTS / "latest.md").write_text(markdown(results))


if __name__ == "__main__":
    main(sys.argv)
