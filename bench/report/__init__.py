"""What a reader sees: figures (``plots``) and REPORT.md (``markdown``), drawn from stored tables only."""

from bench.report.markdown import FIGURES, write_report

__all__ = ["FIGURES", "write_report"]
