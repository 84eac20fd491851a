"""The checklist as static HTML: progress, then one table a phase, with each step's details.

This module imports no Jupyter package, so the CLI and the HTML export can use it. The page is
self-contained (inline CSS, no script, no external link) so that it opens offline.
"""

from __future__ import annotations

from html import escape

from adminkb.i18n import current_language, message
from adminkb.imaging.checklist import Checklist
from adminkb.imaging.steps import SUPPORTED, Step

# The page's `lang` attribute per catalog language: a language tag, not text to translate.
HTML_LANG = {"zh-TW": "zh-Hant-TW", "en": "en"}

STYLE = """
.adminkb-checklist { font-family: sans-serif; font-size: 14px; }
.adminkb-checklist table { border-collapse: collapse; margin-bottom: 1em; width: 100%; }
.adminkb-checklist th, .adminkb-checklist td { border: 1px solid #bbb; padding: 4px 6px; text-align: left;
  vertical-align: top; }
.adminkb-checklist .done { color: #1a7f37; font-weight: bold; }
.adminkb-checklist .open { color: #888; }
.adminkb-checklist .warning { color: #a40e26; }
.adminkb-checklist pre { margin: 2px 0; white-space: pre-wrap; }
.adminkb-checklist progress { width: 12em; }
""".strip()


def checklist_html(checklist: Checklist, *, details: bool = True) -> str:
    """Render the saved state of a checklist as an HTML fragment (a `<div>` with its own style).

    With `details`, each step carries its reason, commands, check and warning in a `<details>`
    element, which browsers show collapsed.
    """
    parts = [f"<div class=\"adminkb-checklist\"><style>{STYLE}</style>",
             f"<h3>{escape(summary_text(checklist))}</h3>"]
    columns = ("done", "step", "title", "who", "when", "note")
    header = "".join(f"<th>{escape(message(f'imaging_checklist.column_{column}'))}</th>" for column in columns)
    for phase in checklist.phases:
        steps = checklist.steps_in(phase)
        done, total = checklist.phase_progress(phase)
        parts.append(f"<h4>{escape(steps[0].phase_title)} "
                     f"<progress max=\"{total}\" value=\"{done}\"></progress> {done}/{total}</h4>")
        parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>")
        for step in steps:
            parts.append(_row(checklist, step, details))
        parts.append("</tbody></table>")
    parts.append("</div>")
    return "\n".join(parts)


def checklist_page(checklist: Checklist) -> str:
    """Return a whole HTML document (UTF-8, no external resources) for the report file."""
    title = escape(message("imaging_checklist.report_title", name=checklist.name))
    return (f"<!DOCTYPE html>\n<html lang=\"{HTML_LANG[current_language()]}\">\n<head>\n"
            f"<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
            f"{checklist_html(checklist)}\n</body>\n</html>\n")


def summary_text(checklist: Checklist) -> str:
    """Return the one-line progress, such as "檢查清單 XP-2026：12/30 已完成"."""
    return message("ui.checklist.summary", name=checklist.name, done=checklist.done, total=checklist.total)


def _row(checklist: Checklist, step: Step, details: bool) -> str:
    entry = checklist.ticks.get(step.id)
    mark = (f"<span class=\"done\">{escape(message('imaging_checklist.mark_done'))}</span>" if entry
            else f"<span class=\"open\">{escape(message('imaging_checklist.mark_open'))}</span>")
    title = escape(step.title)
    if step.support != SUPPORTED:
        title += f" <em>({escape(step.support_label)})</em>"
    if details:
        title = f"<details><summary>{title}</summary>{step_details_html(step)}</details>"
    cells = [mark, f"<code>{escape(step.id)}</code>", title, escape(entry.who) if entry else "",
             escape(entry.when) if entry else "", escape(checklist.note(step.id))]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def step_details_html(step: Step) -> str:
    """Render a step's reason, commands, check and warning as HTML."""
    parts = [f"<p><b>{escape(message('ui.checklist.why'))}</b> {escape(step.why)}</p>"]
    if step.commands:
        commands = escape("\n".join(step.commands))
        parts.append(f"<p><b>{escape(message('ui.checklist.commands'))}</b></p><pre>{commands}</pre>")
    parts.append(f"<p><b>{escape(message('ui.checklist.verify'))}</b> {escape(step.verify)}</p>")
    if step.warning:
        parts.append(f"<p class=\"warning\"><b>{escape(message('ui.checklist.warning'))}</b> "
                     f"{escape(step.warning)}</p>")
    return "".join(parts)
