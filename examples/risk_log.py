"""Log risk scores per request, then read them back: summary, worst requests, export.

Runs offline in seconds with the weight-free guard (the grounding check's heuristic stands in
for a calibrated fabrication detector when no bundle is given):

    python examples/risk_log.py [--log PATH.db]

Afterwards, the same log from the command line:

    scope-guard log summary PATH.db
    scope-guard log tail PATH.db -n 5
    scope-guard log export PATH.db --format csv --out risks.csv
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from scope_guard.demo_data import DEMO_DOCUMENTS, DEMO_REQUESTS
from scope_guard.guard import ScopeGuard
from scope_guard.risklog import SQLiteRiskLog, summarize
from scope_guard.types import Exchange


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(tempfile.mkdtemp(prefix="sg-log-")) / "risk.db"
    parser.add_argument("--log", type=Path, default=default)
    args = parser.parse_args()

    # 1. Every assessment writes one record (texts are hashed unless log_text=True).
    with ScopeGuard(risk_log=args.log, log_text=True) as guard:
        for request in DEMO_REQUESTS:
            for attempt, answer in enumerate(request["answers"], start=1):
                report = guard.assess(
                    Exchange(
                        question=request["question"],
                        contexts=list(DEMO_DOCUMENTS),
                        response=answer,
                        attempt=attempt,
                        meta={"label": request["label"]},
                    )
                )
                print(
                    f"{report.decision.action.value:10s} "
                    f"fabrication={report.scores.get('fabrication', 0.0):.2f}  {answer[:60]}"
                )

    # 2. Read it back.
    with SQLiteRiskLog(args.log, readonly=True) as log:
        records = log.records(order="asc")
        print(f"\n{log.count()} records in {args.log}")
    summary = summarize(records, top=3)
    for action, count in summary.overall.counts.items():
        print(f"  {action:10s} {count:3d}  ({summary.overall.rates[action]:.0%})")
    print("worst requests:")
    for worst in summary.worst:
        print(
            f"  {worst.request_id[:8]} attempt {worst.attempt}: {worst.action}, "
            f"{worst.risk} {worst.score:.2f}"
        )


if __name__ == "__main__":
    main()
