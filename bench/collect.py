"""Rebuild docs/BENCHMARKS.md from the per-benchmark result files in bench/results/.

Each benchmark writes its own table (with machine and date); this keeps the page in one place
and the summary's targets next to the latest measured numbers.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The hand-kept part of the page: targets and the latest numbers next to them.
SUMMARY = ROOT / "bench" / "SUMMARY.md"


def main() -> None:
    parts = [SUMMARY.read_text()]
    for path in sorted((ROOT / "bench" / "results").glob("*.md")):
        body = path.read_text().strip()
        # Demote the result file's headings one level so they nest under this page.
        body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
        parts.append(f"\n{body}\n")
    (ROOT / "docs" / "BENCHMARKS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
