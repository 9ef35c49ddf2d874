"""The watchdog report: one self-contained HTML file per run (inline-SVG charts; no scripts, no
external assets), plus CSV exports. Public: restricted findings appear as counts only, never
their URLs (:mod:`scrutineer.reports.data`).

Written to ``<workspace>/reports/``, each file atomically:

- ``<run_id>.html``: every section of :func:`scrutineer.reports.data.report_data`;
- ``<run_id>-findings.csv``: reason, restricted, findings, samples;
- ``<run_id>-domains.csv``: registrable domains by samples with a hash-list match.

The CSVs are spreadsheet-safe (:mod:`scrutineer.reports.csvsafe`). :data:`ENV` is the Jinja environment of
the templates: the review app renders ``report_body.html.j2`` (which expects ``report``, the dict)
from it inside its own page layout, with ``report.css.j2`` (the body's styles, print included);
``charts.j2`` holds the chart macros (HTML bars, so labels keep their size on a phone). Text from a
dataset or a person goes through its :func:`visible` filter; a reason code through :func:`reason`
(its plain-language label, :func:`scrutineer.core.registry.reason_label`); a count with its noun
through :func:`plural`.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from scrutineer import Workspace
from scrutineer.core.config import Config
from scrutineer.core.files import atomic_write_text
from scrutineer.core.layout import Layout
from scrutineer.core.registry import reason_label
from scrutineer.core.wording import number, plural
from scrutineer.reports.csvsafe import BIDI_CONTROLS, csv_text
from scrutineer.reports.data import report_data


def visible(text: object) -> Markup:
    """``text`` HTML-escaped, each of :data:`BIDI_CONTROLS` shown as ``<U+202E>`` (in a
    ``<code class="control">``) instead of obeyed; None is shown as nothing."""
    escaped = escape("" if text is None else text)
    return Markup(BIDI_CONTROLS.sub(lambda m: f'<code class="control">&lt;U+{ord(m[0]):04X}&gt;</code>', escaped))


@jinja2.pass_context
def label(context: jinja2.runtime.Context, code: str) -> str:
    """The plain-language label of reason ``code`` (:func:`scrutineer.core.registry.reason_label`),
    crowd reasons described by the template's ``crowd_categories`` (category name -> description)
    when the page has them."""
    return reason_label(code, context.get("crowd_categories"))


@jinja2.pass_context
def reason(context: jinja2.runtime.Context, code: str) -> Markup:
    """Reason ``code`` for a reader: its label, then the code in a ``<code class="reason">`` for
    those who need it (both escaped)."""
    return Markup('{} <code class="reason">{}</code>').format(label(context, code), code)


#: The report templates (``reports/templates``), HTML-escaping every value, failing on a missing one.
ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("scrutineer.reports", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
    auto_reload=False,  # templates do not change while the app runs: no stat() of each file per page
)
ENV.filters.update(visible=visible, number=number, plural=plural, label=label, reason=reason)


def crowd_categories(cfg: Config) -> dict[str, str | None]:
    """The config's crowd categories as the templates take them (``crowd_categories``): name -> description."""
    return {name: category.description for name, category in cfg.crowd.categories.items()}


def write_report(cfg: Config, run_id: str | None = None, crowd: dict | None = None) -> Path:
    """Write the report of ``run_id`` (default: the dataset's latest finished scan) and its CSVs,
    with the crowd flags' counts when the config has crowd categories.

    Returns:
        The HTML file's path.

    Raises:
        WorkspaceError: no such run of the dataset, or no finished one.
        OSError: a file could not be written; it is left as it was.
    """
    with Workspace(cfg.workspace) as ws:
        if run_id is None:
            run_id = ws.latest_run(cfg.dataset.name)
        report = report_data(ws.con, ws.path, cfg.dataset.name, run_id, crowd)
    layout = Layout(cfg.workspace)
    layout.reports.mkdir(parents=True, exist_ok=True)
    path = layout.report(run_id)
    files = {"findings": layout.report_findings(run_id).name, "domains": layout.report_domains(run_id).name}
    atomic_write_text(path, ENV.get_template("report.html.j2").render(report=report, crowd_categories=crowd_categories(cfg), files=files))
    columns = ["reason", "restricted", "findings", "samples"]
    atomic_write_text(layout.report_findings(run_id), csv_text(columns, ([r[c] for c in columns] for r in report["reasons"])))
    atomic_write_text(
        layout.report_domains(run_id),
        csv_text(["registrable_domain", "samples"], ([d["domain"], d["samples"]] for d in report["top_domains_matches"])),
    )
    return path
