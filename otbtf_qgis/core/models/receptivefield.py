"""The ``receptivefield`` job: a SavedModel's padding-free output for an input size, and what to serve."""

from __future__ import annotations

from typing import Any

from otbtf_qgis.core.jobs.configs.receptivefield import ReceptiveFieldConfig
from otbtf_qgis.core.models.graph import analyze_saved_model
from otbtf_qgis.core.models.report import report_html, report_markdown
from otbtf_qgis.core.progress import Reporter


def run(config: ReceptiveFieldConfig, reporter: Reporter) -> dict[str, Any]:
    """The ``receptivefield`` job: analyse a SavedModel for an input size; return tables and recommendation."""
    reporter.progress(0.05)
    report = analyze_saved_model(config.model, config.input_size, reporter.sub(0.05, 0.95))
    markdown = report_markdown(report)
    for line in markdown.splitlines():
        reporter.info(line)
    reporter.progress(1.0)
    rf = report.receptive_field
    ef = report.expression_field
    return {
        "report": report.to_dict(),
        "table": markdown,
        "html": report_html(report),
        "output_name": report.recommended_output or "",
        "rfield": rf[0] if rf else 0,
        "efield": ef[0] if ef else 0,
        "rfield_xy": list(rf) if rf else None,
        "efield_xy": list(ef) if ef else None,
        "method": report.method,
    }
