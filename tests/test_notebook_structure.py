"""The shape every runbook in notebooks/ shares, and the shape of the index.

A runbook's cells come in this order:
- a `# NN title` cell, then `## 目的`, `## 使用時機`, `## 事前準備`;
- `## 參數`, followed by one code cell tagged `parameters`;
- `## 步驟 1：...`, `## 步驟 2：...` and so on, with other level-2 sections allowed between steps;
- an optional `## 練習`, then `## 結論` and `## 參考資料` with links;
- a last markdown cell with the navigation line to the neighbours adminkb.runbooks lists.

Code cells define no functions or classes, because logic belongs in adminkb where it is
tested, and no code cell is longer than MAX_CODE_LINES lines. No markdown cell is longer than
MAX_MARKDOWN_LINES lines or MAX_MARKDOWN_CHARACTERS characters, so that prose comes in pieces a
reader takes in between the steps. The mail runbooks 01 to 07 have a `## 練習` section.

The index (00_index) is a guide, not a runbook: it has the guide's sections, and the rules for
code cells, markdown cells and the navigation line apply to it too.
"""

from __future__ import annotations

import ast
import io
import ipaddress
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

from adminkb.runbooks import NOTEBOOKS_DIR, RUNBOOKS

MAX_CODE_LINES = 15
# About one screen of prose. When the limits were set, the longest cells were a table of 37 lines
# (01) and a paragraph of 1,675 characters (03).
MAX_MARKDOWN_LINES = 40
MAX_MARKDOWN_CHARACTERS = 2_000
MAIL_RUNBOOKS = ("01", "02", "03", "04", "05", "06", "07")
HEAD_SECTIONS = ("目的", "使用時機", "事前準備", "參數")
TAIL_SECTIONS = ("結論", "參考資料")
_H2 = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)
_STEP = re.compile(r"^步驟\s*(\d+)\s*[：:]\s*\S")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")

RUNBOOK_FILES = sorted(path for path in NOTEBOOKS_DIR.glob("*.ipynb") if path.name != "00_index.ipynb")
INDEX_FILE = NOTEBOOKS_DIR / "00_index.ipynb"
# The index's level-2 sections by the start of their headings: the three uses of the collection, the
# lab, the list of runbooks, running against a real server, and the instructor's note.
INDEX_SECTIONS = ("這套手冊給誰用", "內建的郵件實驗室", "手冊清單", "對真實伺服器執行", "講師指南")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _sections(notebook: nbformat.NotebookNode) -> list[tuple[str, int]]:
    """Return each level-2 heading with the index of the cell that contains it."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            found.extend((title, index) for title in _H2.findall(cell.source))
    return found


def _neighbours(filename: str) -> tuple[str | None, str | None]:
    names = [runbook.filename for runbook in RUNBOOKS]
    position = names.index(filename)
    previous = names[position - 1] if position > 0 else None
    following = names[position + 1] if position + 1 < len(names) else None
    return previous, following


def _defines_function_or_class(source: str) -> bool:
    # IPython magics and shell escapes are not Python; such lines cannot define anything.
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return bool(re.search(r"^\s*(def|class|async\s+def)\s", source, re.MULTILINE))
    # A lambda passed to pandas (df.apply(lambda row: ...)) is an expression, but a lambda
    # bound to a name is a function definition in another spelling.
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               or (isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda))
               for node in ast.walk(tree))


@pytest.fixture(params=RUNBOOK_FILES, ids=lambda path: path.name)
def runbook(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, _read(request.param)


def test_runbooks_found():
    assert RUNBOOK_FILES, "notebooks/ has no runbook besides the index"


def test_runbook_listed_in_table(runbook):
    path, _ = runbook
    assert path.name in [item.filename for item in RUNBOOKS], f"{path.name} is missing from adminkb.runbooks.RUNBOOKS"


def test_title_cell_first(runbook):
    path, notebook = runbook
    number = path.name[:2]
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert re.match(rf"#\s+{number}\s+\S", first.source), f"{path.name} must start with '# {number} title'"


def test_head_sections_in_order(runbook):
    path, notebook = runbook
    titles = [title for title, _ in _sections(notebook)]
    assert titles[:len(HEAD_SECTIONS)] == list(HEAD_SECTIONS), f"{path.name} opens with {titles[:4]}"


def test_one_parameters_cell_after_heading(runbook):
    path, notebook = runbook
    tagged = [index for index, cell in enumerate(notebook.cells)
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} has {len(tagged)} cells tagged parameters"
    index = tagged[0]
    assert notebook.cells[index].cell_type == "code"
    heading_index = dict(_sections(notebook))["參數"]
    between = notebook.cells[heading_index + 1:index]
    assert all(cell.cell_type == "markdown" and not _H2.search(cell.source) for cell in between), \
        f"{path.name}: the parameters cell must follow the 參數 section directly"


def test_parameters_cell_conventions(runbook):
    path, notebook = runbook
    cell = next(cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", []))
    for line in cell.source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name = line.split("=", 1)[0].strip()
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{path.name}: parameter {name!r} is not UPPER_CASE"
        assert "#" in line.split("=", 1)[1], f"{path.name}: parameter {name} has no comment"


# One name per thing across the runbooks: names runbooks used before, with the name to use instead.
PARAMETER_SYNONYMS = {
    "DNS_SERVER": "NAMESERVER", "DNS": "NAMESERVER", "RCPT_TO": "REMOTE_RCPT", "RECIPIENT": "REMOTE_RCPT",
    "APP_SENDER": "MAIL_FROM", "SENDER": "MAIL_FROM", "SEND": "CONFIRM", "HOST": "SERVER", "SMTP_SERVER": "SERVER",
    "SOURCE_IP": "APP_IP", "CLIENT_IP": "APP_IP", "LOGS": "LOG_PATH", "LOG_DIR": "LOG_PATH", "MAIL_ROOT": "MAILROOT",
}
# Shared names whose lab default is the same in every runbook that has them.
LAB_DEFAULTS = {"SERVER": "lab", "APP_IP": "127.0.0.10", "MAILROOT": None, "LOG_PATH": None, "NAMESERVER": None,
                "CONFIRM": False}
# Addresses a lab default may name: loopback and the documentation ranges of RFC 5737.
LAB_NETWORKS = tuple(ipaddress.ip_network(network) for network in
                     ("127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
# Domains a lab default may name: the reserved ones of RFC 2606.
LAB_DOMAINS = ("example.com", "example.net", "example.org", ".test", ".invalid")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")


def _parameters(notebook: nbformat.NotebookNode) -> list[tuple[str, object, str]]:
    """Return each assignment of the parameters cell as (name, default value, comment on its line)."""
    source = next(cell.source for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", []))
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    found = []
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"line {node.lineno} is not NAME = value"
        comment = " ".join(comments[line] for line in range(node.lineno, node.end_lineno + 1) if line in comments)
        found.append((node.targets[0].id, ast.literal_eval(node.value), comment))
    return found


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    return []


def test_parameters_have_zh_tw_comments(runbook):
    from tests.test_i18n import SIMPLIFIED_ONLY

    path, notebook = runbook
    for name, _, comment in _parameters(notebook):
        assert _CJK.search(comment), f"{path.name}: parameter {name} has no comment in Chinese: {comment!r}"
        simplified = set(comment) & SIMPLIFIED_ONLY
        assert not simplified, f"{path.name}: the comment on {name} has simplified characters {simplified}"


def test_parameters_use_shared_names(runbook):
    path, notebook = runbook
    for name, value, _ in _parameters(notebook):
        assert name not in PARAMETER_SYNONYMS, f"{path.name}: rename parameter {name} to {PARAMETER_SYNONYMS.get(name)}"
        if name in LAB_DEFAULTS:
            assert value == LAB_DEFAULTS[name], f"{path.name}: {name} defaults to {value!r}, not {LAB_DEFAULTS[name]!r}"


def test_parameters_default_to_lab(runbook):
    path, notebook = runbook
    for name, value, _ in _parameters(notebook):
        for text in _strings(value):
            for address in _IPV4.findall(text):
                assert any(ipaddress.ip_address(address) in network for network in LAB_NETWORKS), \
                    f"{path.name}: {name} names {address}, outside loopback and the documentation ranges"
            for domain in _DOMAIN.findall(text.rpartition("@")[2] if "@" in text else text):
                if text.startswith("../") or _IPV4.fullmatch(domain):
                    continue
                assert domain.lower().endswith(LAB_DOMAINS), f"{path.name}: {name} names {domain}, not a reserved domain"
            assert not re.match(r"^(?:[A-Za-z]:\\|/|\\\\)", text), f"{path.name}: {name} defaults to the path {text}"
            if text.startswith("../"):
                assert (path.parent / text).exists(), f"{path.name}: {name} points at {text}, which does not exist"


@pytest.mark.parametrize("path", [INDEX_FILE, *RUNBOOK_FILES], ids=lambda path: path.name)
def test_first_code_cell_shows_full_cells(path):
    # Without it pandas cuts table cells after 50 characters, in the runbook and its HTML page.
    notebook = _read(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"
            and "parameters" not in cell.get("metadata", {}).get("tags", [])]
    assert "show_full_cells()" in code[0].source, f"{path.name}: the first code cell must call show_full_cells()"


def test_steps_numbered_in_order(runbook):
    path, notebook = runbook
    sections = _sections(notebook)
    steps = [int(_STEP.match(title).group(1)) for title, _ in sections if _STEP.match(title)]
    assert steps, f"{path.name} has no '## 步驟 1：...' section"
    assert steps == list(range(1, len(steps) + 1)), f"{path.name} numbers its steps {steps}"


def test_sections_between_steps_and_tail(runbook):
    path, notebook = runbook
    titles = [title for title, _ in _sections(notebook)]
    first_step = next(index for index, title in enumerate(titles) if _STEP.match(title))
    assert first_step == len(HEAD_SECTIONS), f"{path.name}: 步驟 1 must follow 參數, found {titles[:first_step]}"
    assert titles[-len(TAIL_SECTIONS):] == list(TAIL_SECTIONS), f"{path.name} ends with {titles[-2:]}"
    for required in (*HEAD_SECTIONS, *TAIL_SECTIONS):
        assert titles.count(required) == 1, f"{path.name} has {titles.count(required)} '## {required}' sections"


def test_exercise_section_before_conclusion(runbook):
    path, notebook = runbook
    titles = [title for title, _ in _sections(notebook)]
    if path.name[:2] in MAIL_RUNBOOKS:
        assert "練習" in titles, f"{path.name} is a mail runbook, so it needs a '## 練習' section"
    elif "練習" not in titles:
        # Exercises are required of the mail runbooks only; the others may have one.
        return
    last_step = max(index for index, title in enumerate(titles) if _STEP.match(title))
    assert last_step < titles.index("練習") < titles.index("結論")


def test_references_have_links(runbook):
    path, notebook = runbook
    index = dict(_sections(notebook))["參考資料"]
    # A markdown link or a bare URL: JupyterLab shows both as links.
    assert "https://" in notebook.cells[index].source, f"{path.name}: 參考資料 has no https link"


def _check_neighbour(path: Path, source: str, label: str, neighbour: str | None) -> None:
    """Check one side of the navigation line: a link to the neighbour, or its number as text.

    A runbook that is not written yet is named without a link, because the link would be broken
    (tests/test_notebooks.py rejects links to missing notebooks). Runbooks land one at a time, so
    a neighbour that was written after this notebook may still be named as text.
    """
    links = [target for text, target in _LINK.findall(source) if label in text]
    if neighbour is None:
        assert label not in source, f"{path.name}: navigation names a {label} runbook, but none follows in the table"
        return
    mentioned = re.search(rf"{label}[：:]\s*{neighbour[:2]}\s", source)
    assert links == [neighbour] or (not links and mentioned), \
        f"{path.name}: {label} must name runbook {neighbour[:2]} or link to {neighbour}, found links {links}"


def test_navigation_line_last(runbook):
    path, notebook = runbook
    last = notebook.cells[-1]
    assert last.cell_type == "markdown"
    assert not _H2.search(last.source), f"{path.name}: the last cell must be the navigation line alone"
    links = {text: target for text, target in _LINK.findall(last.source)}
    assert links.get("目錄") == "00_index.ipynb", f"{path.name}: navigation has no [目錄](00_index.ipynb)"
    previous, following = _neighbours(path.name)
    _check_neighbour(path, last.source, "上一篇", previous)
    _check_neighbour(path, last.source, "下一篇", following)


def test_code_cells_short_without_definitions(runbook):
    path, notebook = runbook
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        assert len(lines) <= MAX_CODE_LINES, f"{path.name} cell {index + 1} has {len(lines)} lines"
        assert not _defines_function_or_class(cell.source), f"{path.name} cell {index + 1} defines a function or class"


@pytest.mark.parametrize("path", [INDEX_FILE, *RUNBOOK_FILES], ids=lambda path: path.name)
def test_markdown_cells_short(path):
    notebook = _read(path)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        lines = len(cell.source.splitlines())
        assert lines <= MAX_MARKDOWN_LINES, f"{path.name} cell {index + 1} has {lines} lines"
        characters = len(cell.source)
        assert characters <= MAX_MARKDOWN_CHARACTERS, f"{path.name} cell {index + 1} has {characters} characters"


# --- the index ----------------------------------------------------------------------------------

@pytest.fixture
def index() -> tuple[Path, nbformat.NotebookNode]:
    return INDEX_FILE, _read(INDEX_FILE)


def test_index_title_cell_first(index):
    path, notebook = index
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert re.match(r"#\s+\S", first.source), f"{path.name} must start with a '# title' heading"


def test_index_guide_sections(index):
    path, notebook = index
    titles = [title for title, _ in _sections(notebook)]
    for section in INDEX_SECTIONS:
        assert any(title.startswith(section) for title in titles), f"{path.name} has no '## {section}' section"


def test_index_lists_three_uses(index):
    path, notebook = index
    uses = next(cell.source for cell in notebook.cells
                if cell.cell_type == "markdown" and any(title.startswith(INDEX_SECTIONS[0])
                                                        for title in _H2.findall(cell.source)))
    items = re.findall(r"^\d+\.\s", uses, re.MULTILINE)
    assert len(items) == 3, f"{path.name}: the uses of the collection are {len(items)} items, not three"


def test_index_code_cells_short_without_definitions(index):
    # The runbooks' rule for code cells, applied to the index.
    test_code_cells_short_without_definitions(index)


def test_index_navigation_line_last(index):
    # The runbooks' navigation check: [目錄] to itself, no previous runbook, the next is 01.
    test_navigation_line_last(index)


# --- the checker on hand-made notebooks ---------------------------------------------------------

@pytest.mark.parametrize(("source", "defines"), [
    ("def helper():\n    return 1", True),
    ("class Form:\n    pass", True),
    ("async def fetch():\n    pass", True),
    ("check = lambda value: value > 1", True),
    ("table.apply(lambda row: row.size, axis=1)", False),
    ("%%time\ndef timed():\n    pass", True),
    ("%matplotlib inline\ntarget.queue_table()", False),
    ("target = open_target(SERVER)\ntarget", False),
    ("print('def is only text here')", False),
])
def test_definition_detector(source, defines):
    assert _defines_function_or_class(source) is defines


def test_neighbours_follow_runbook_table():
    assert _neighbours("00_index.ipynb") == (None, "01_smtp_session.ipynb")
    assert _neighbours("02_pickup_directory.ipynb") == ("01_smtp_session.ipynb", "03_mailroot_inspection.ipynb")
    assert _neighbours(RUNBOOKS[-1].filename) == (RUNBOOKS[-2].filename, None)
