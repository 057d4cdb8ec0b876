"""The standard market simulation (issue 7): about 200 providers, 2,000 buyers and 500 one-hour
rounds through the real services, with both baselines, on embedded servers of its own.

    make bench NAME=simulation          # BENCH_QUICK=1: 20 providers, 200 buyers, 48 rounds

Prints the wall time (target ≤ 600 s on the 2-core machine) and each mechanism's utilization and
gains from trade; the full report (JSON, Markdown, PNG) goes to benchmarks/results/simulation/.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import django_stack, report

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
SIZES = (
    {"providers": 20, "buyers": 200, "rounds": 48}
    if QUICK
    else {"providers": 200, "buyers": 2000, "rounds": 500}
)
SEED = 7


def main() -> None:
    with django_stack():
        from matching.management.commands.simulate import run_simulation
        from matching.simulation import report as simulation_report

        started = time.monotonic()
        result = run_simulation(seed=SEED, demand=1.0, progress=True, **SIZES)
        elapsed = time.monotonic() - started
        out = Path(__file__).resolve().parent / "results" / "simulation"
        simulation_report.write(result, out)
        figures: dict[str, object] = {
            "scenario": f"seed {SEED}: " + ", ".join(f"{v} {k}" for k, v in SIZES.items()),
            "simulation_s": round(elapsed, 1),
            "ledger_ok": result["ledger"]["ok"],
            "certificate_violations": result["exchange"]["rounds_with_certificate_violations"],
        }
        for name, values in result["mechanisms"].items():
            for key in ("utilization", "demand_served", "gains_from_trade"):
                figures[f"{name}_{key}"] = values[key]
            figures[f"{name}_gains_whole_leases"] = values["gains_from_trade_whole_leases"]
        report("simulation", figures)


if __name__ == "__main__":
    main()
