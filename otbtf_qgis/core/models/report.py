"""The receptive-field report as tables: Markdown for the log, HTML for the Processing results viewer."""

from __future__ import annotations

import html
from collections.abc import Sequence

from otbtf_qgis.core.models.receptive_field import ReceptiveFieldReport, cropped_outputs, output_order


def _size_text(size: tuple[int, int] | None) -> str:
    if size is None:
        return "-"
    return str(size[0]) if size[0] == size[1] else f"{size[0]}×{size[1]}"


def report_tables(report: ReceptiveFieldReport) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """The two tables of a report: per layer (may be empty) and per cropped output, as header + rows."""
    layer_header = ["Layer", "Type", "Kernel", "Stride", "Out. size", "Valid out. size"]
    first = next(iter(report.input_sizes.items()))
    layer_rows = [["input", "-", "-", "-", _size_text(first[1]), _size_text(first[1])]]
    for g in report.layers:
        layer_rows.append([g.name, g.kind, _size_text(g.kernel), _size_text(g.stride), _size_text(g.size),
                           _size_text(g.valid)])
    output_header = ["Output", "Crop", "Out. size", "Valid out. size", "Receptive field", "Expression field",
                     "Padding-free"]
    output_rows = []
    rf = first[1]
    cropped = cropped_outputs(report.outputs)
    for name in sorted(report.outputs, key=output_order):
        output = report.outputs[name]
        base = report.outputs[cropped[name][0]] if name in cropped else None
        if base is not None and base.size is not None:
            crop = cropped[name][1]
            ef = (base.size[0] - 2 * crop, base.size[1] - 2 * crop)
            output_rows.append([name, str(crop), _size_text(output.size), _size_text(output.valid_size),
                                _size_text(rf), _size_text(ef) if min(ef) >= 1 else "none",
                                "yes" if base.covered_by(crop) else "no"])
        else:
            valid = "yes" if (output.fully_valid if output.size is None else output.valid_size == output.size) else "no"
            output_rows.append([name, "0", _size_text(output.size), _size_text(output.valid_size)
                                if output.size else "-", _size_text(rf), _size_text(output.size) if output.size
                                else "1", valid])
    return layer_header, (layer_rows if report.layers else []), output_header, output_rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table (for the Processing results viewer)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table border='1' cellpadding='3'><tr>{head}</tr>{body}</table>"


def _input_size_text(report: ReceptiveFieldReport) -> str:
    sizes = ", ".join(f"{name} {_size_text(size)}" for name, size in report.input_sizes.items())
    return f"Input size: {sizes} (method: {report.method})."


def _recommendation_text(report: ReceptiveFieldReport) -> str:
    return (f"OUTPUT_NAME={report.recommended_output}, RFIELD={_size_text(_yx(report.receptive_field))}, "
            f"EFIELD={_size_text(_yx(report.expression_field))}.")


def report_markdown(report: ReceptiveFieldReport) -> str:
    """The report as Markdown: the per-layer table, the per-output table and the recommendation."""
    layer_header, layer_rows, output_header, output_rows = report_tables(report)
    parts = [_input_size_text(report)]
    if layer_rows:
        parts.append(markdown_table(layer_header, layer_rows))
    parts.append(markdown_table(output_header, output_rows))
    if report.recommended_output:
        parts.append(f"Recommended: {_recommendation_text(report)}")
    parts.extend(report.notes)
    return "\n\n".join(parts)


def report_html(report: ReceptiveFieldReport) -> str:
    """The report as an HTML page."""
    layer_header, layer_rows, output_header, output_rows = report_tables(report)
    parts = [f"<p>{html.escape(_input_size_text(report))}</p>"]
    if layer_rows:
        parts.append(html_table(layer_header, layer_rows))
    parts.append(html_table(output_header, output_rows))
    if report.recommended_output:
        parts.append(f"<p><b>Recommended</b>: {html.escape(_recommendation_text(report))}</p>")
    parts += [f"<p>{html.escape(note)}</p>" for note in report.notes]
    return "<html><body>" + "".join(parts) + "</body></html>"


def _yx(size: tuple[int, int] | None) -> tuple[int, int] | None:
    return (size[1], size[0]) if size else None
