"""ioc-scan's section of the run report: the verdict, what was covered and the findings by package."""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.jobs.ioc_scan.scan import results
from engine.kinds import ReportSection
from engine.safetext import visible

TOP_PACKAGES = 20


async def report_sections(store: Any, run_id: int) -> list[ReportSection]:
    """One section, ``ioc_scan``: the run family's verdict (never "nothing found" for a run that
    did not cover everything), its coverage and how many findings each package has."""
    res = await results(store, run_id)
    cov = res.coverage
    by_package = Counter(f"{m.ecosystem}:{m.package_name}@{m.version}" for m in res.matches)
    data = {"verdict": cov.verdict(len(res.matches)), "complete": cov.complete, "findings": len(res.matches),
            "parse_failures": len(res.failures), "by_package": dict(by_package.most_common()),
            "coverage": cov.to_dict()}
    lines = [f"**{visible(data['verdict'])}**", "",
             f"{len(res.matches)} finding(s) in {len(cov.repos_scanned)} repositories scanned; "
             f"{len(cov.repos_not_scanned)} not scanned; {len(res.failures)} file(s) could not be parsed.", ""]
    if by_package:
        lines += ["| package | findings |", "|---|---|"]
        lines += [f"| {visible(name)} | {n} |" for name, n in by_package.most_common(TOP_PACKAGES)]
        if len(by_package) > TOP_PACKAGES:
            lines.append(f"| … {len(by_package) - TOP_PACKAGES} more | |")
        lines.append("")
    return [ReportSection(key="ioc_scan", title="IOC scan", data=data, markdown="\n".join(lines))]
