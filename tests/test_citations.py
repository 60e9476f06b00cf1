"""Every citation in the code and the user docs resolves inside the repository.

Rules checked on every text file of ``lowrankdp/``, ``proofs_check/``, ``benchmarks/``, ``experiments/``,
``tests/`` and on ``README.md`` and ``docs/*.md`` (generated ``docs/results/`` files are rewritten by the code that
writes them and are not checked):

1. a ``*.md`` file named with a directory (``docs/models.md``) exists at that path from the repository root (or,
   in a Markdown page, from the page's directory); a bare name (``smoke_report.md``) is a file of the root or
   of ``docs/``; names of files the toolkit writes (``report.md``) are not citations;
2. ``theory.md`` is always cited as ``docs/theory.md`` followed by at least one section (``§4.2``), and every
   section listed after it (``§4.1, §4.3``, ``§2–§4``) is a heading of ``docs/theory.md``;
3. no issue number (``issue 3``, ``Issue #12``): a reader of the code cannot follow one.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
CODE_DIRS = ("lowrankdp", "proofs_check", "benchmarks", "experiments", "tests")
SUFFIXES = {".py", ".toml", ".yaml", ".yml", ".md", ".txt", ".cfg"}
#: names of files the toolkit writes (not citations)
# files the toolkit writes (not citations): a sweep's report, and what `make gpu-check` writes on a GPU machine
OUTPUT_NAMES = {"report.md", "gpu_check.md", "gpu_finetune_benchmark.md", "gpu_replication.md"}

MD_REF = re.compile(r"(?<![\w{}<>/.-])((?:\.\./|\./)?[\w./-]*\w\.md)\b")
THEORY_CITE = re.compile(r"(\S*)theory\.md`*")
SECTION_LIST = re.compile(r"\s*((?:§\s*\d+(?:\.\d+)?[a-z]?(?:\s*(?:,|–|-|and)\s*(?=§))?)+)")
SECTION = re.compile(r"§\s*(\d+(?:\.\d+)?[a-z]?)")
ISSUE = re.compile(r"\b[Ii]ssues?\s*#?\s*\d+")
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)?[a-z]?)\.?\s", re.M)


def theory_sections(text: str) -> set[str]:
    return set(HEADING.findall(text))


def files_to_check() -> list[Path]:
    out = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for d in CODE_DIRS:
        out += sorted(p for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in SUFFIXES
                      and "__pycache__" not in p.parts)
    return [p for p in out if p.exists() and p.resolve() != Path(__file__).resolve()]


def _inside(root: Path, path: Path) -> bool:
    """An existing file inside the repository (a path escaping it, e.g. to a sibling folder, does not count)."""
    return path.is_file() and path.resolve().is_relative_to(root.resolve())


def citation_problems(text: str, *, sections: set[str], root: Path = ROOT, here: Path | None = None) -> list[str]:
    """Problems with the citations in ``text`` (one string per problem; empty when every citation resolves).
    ``here``: the directory of the file the text comes from (Markdown links are relative to it)."""
    problems: list[str] = []
    names = {p.name for p in (root / "docs").rglob("*.md")} | {p.name for p in root.glob("*.md")}
    for m in MD_REF.finditer(text):
        ref = m.group(1)
        if ref.rsplit("/", 1)[-1] in OUTPUT_NAMES or ref == "theory.md":  # theory.md: rule 2 reports it
            continue
        if "/" not in ref:
            if ref not in names:
                problems.append(f"{ref!r} is not a file of the repository's docs")
        elif not (_inside(root, root / ref) or (here is not None and _inside(root, here / ref))):
            problems.append(f"{ref!r} does not exist in the repository")
    for m in THEORY_CITE.finditer(text):
        prefix = m.group(1).lstrip("`(\"'[")
        if prefix != "docs/":
            problems.append(f"cite the theory page as 'docs/theory.md', got {prefix + 'theory.md'!r}")
            continue
        listed = SECTION_LIST.match(text, m.end())
        if listed is None:
            problems.append(f"docs/theory.md cited without a section: {text[m.start():m.end() + 30]!r}")
            continue
        for sec in SECTION.findall(listed.group(1)):
            if sec not in sections:
                problems.append(f"docs/theory.md §{sec} is not a section of docs/theory.md")
    for m in ISSUE.finditer(text):
        problems.append(f"issue number cited: {m.group(0)!r}")
    return problems


def test_theory_page_has_the_sections_code_relies_on():
    sections = theory_sections(THEORY.read_text(encoding="utf-8"))
    for sec in ("0", "1", "2", "2.1", "2.2", "3", "3.1", "3.2", "4", "4.1", "4.2", "4.3", "4.4", "4.4b", "4.5",
                "4.6", "5", "6", "7", "8", "8.1", "8.6", "9", "9.1"):
        assert sec in sections, sec


def test_checker_catches_each_kind_of_broken_citation():
    sections = {"1", "4.2"}
    good = "see docs/theory.md §4.2 and docs/theory.md §1, §4.2; writes report.md; README.md"
    assert citation_problems(good, sections=sections) == []
    bad = {
        "replication" + ".md §2": "not a file of the repository's docs",
        "docs/nowhere" + ".md": "does not exist",
        "../shared/docs/anchors" + ".md": "does not exist",
        "theory" + ".md §4.2": "cite the theory page as",
        "docs/theory" + ".md, which says": "without a section",
        "docs/theory" + ".md §4.9": "§4.9 is not a section",
        "docs/theory" + ".md §1, §7": "§7 is not a section",
        "(is" + "sue 3)": "issue number",
        "Is" + "sue #12": "issue number",
    }
    for text, expected in bad.items():
        found = citation_problems(text, sections=sections)
        assert any(expected in p for p in found), (text, found)


def test_citations_resolve():
    sections = theory_sections(THEORY.read_text(encoding="utf-8"))
    report = []
    for path in files_to_check():
        text = path.read_text(encoding="utf-8", errors="replace")
        if path == THEORY:
            text = text.replace("`docs/theory.md §N`", "")  # the page's own description of the citation form
        for problem in citation_problems(text, sections=sections, here=path.parent):
            report.append(f"{path.relative_to(ROOT)}: {problem}")
    assert not report, f"{len(report)} unresolved citations:\n" + "\n".join(report)
