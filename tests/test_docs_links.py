"""The README and the documentation pages: every relative link reaches a file (and heading) that exists, on GitHub
and in the MkDocs site alike; the README stays short; every page is in the site's navigation. Plain text
parsing only: MkDocs itself runs in `tox -e docs`."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _prose(text: str, blank_code: bool = True) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked (links in code are not links)."""
    lines, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"\s*(```+|~~~+)", line)
        if marker:
            fence = None if fence and marker.group(1).startswith(fence) else (fence or marker.group(1))
            continue
        if fence is None:
            lines.append(re.sub(r"`[^`]*`", "``", line) if blank_code else line)
    return lines


def _heading_text(raw: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # a link's text only
    return text.replace("`", "").replace("*", "")


def _slug_mkdocs(text: str) -> str:
    """Python-Markdown's toc slugify (MkDocs' heading ids)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _slug_github(text: str) -> str:
    """GitHub's heading anchors: lower case, punctuation but hyphens dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Heading anchors that both GitHub and MkDocs give ``page``."""
    found = set()
    for line in _prose(page.read_text(encoding="utf-8"), blank_code=False):
        m = HEADING.match(line)
        if m:
            text = _heading_text(m.group(2))
            if _slug_mkdocs(text) == _slug_github(text):
                found.add(_slug_mkdocs(text))
    return found


def broken_links(page: Path, root: Path = ROOT, docs: Path = DOCS) -> list[str]:
    """What is wrong with each relative link of ``page`` (an empty list when nothing is)."""
    problems = []
    for line in _prose(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}: {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file")
                continue
            if page.is_relative_to(docs) and not dest.is_relative_to(docs):
                problems.append(f"{where}: leaves docs/, which the site cannot link")
            if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                problems.append(f"{where}: no heading with that anchor (on GitHub and in MkDocs)")
    return problems


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_every_relative_link_reaches_an_existing_file_and_heading():
    pages = _pages()
    assert len(pages) > 10 and (DOCS / "index.md") in pages
    links = sum(len(LINK.findall("\n".join(_prose(p.read_text(encoding="utf-8"))))) for p in pages)
    assert links > 50, links  # the pages do link to each other
    assert [problem for page in pages for problem in broken_links(page)] == []


def test_the_checker_finds_a_missing_file_a_missing_anchor_and_a_link_out_of_docs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A page\n\n## The `bench score A B` command: two sets\n")
    (tmp_path / "outside.md").write_text("# Out\n")
    page = docs / "b.md"
    page.write_text("# B page\n\n[ok](a.md#the-bench-score-a-b-command-two-sets) [ok](https://example.org/x.md)\n"
                    "`[in code](nothing.md)`\n\n```\n[in a block](nothing.md)\n```\n"
                    "[gone](missing.md) [bad](a.md#nope) [out](../outside.md) [self](#b-page) [self](#none)\n")
    problems = broken_links(page, tmp_path, docs)
    assert [p.split(": ")[-1] for p in problems] == [
        "no such file", "no heading with that anchor (on GitHub and in MkDocs)",
        "leaves docs/, which the site cannot link", "no heading with that anchor (on GitHub and in MkDocs)"]
    assert [p.split(": ")[1] for p in problems] == ["missing.md", "a.md#nope", "../outside.md", "#none"]


def test_readme_is_short_and_keeps_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 300
    # .ci/run relies on the second command, and the tests' session fixture on the first
    assert "python3 -m pip install -e . && python3 -m bench run --method tiny --suite smoke\n" in readme
    assert 'python3 -m pip install "tox>=4" && python3 -m tox\n' in readme
    assert 'python3 -m pip install "tox>=4" && python3 -m tox' in (ROOT / ".ci" / "run").read_text()


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:"):]
    entries = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)\s*$", nav, flags=re.M)
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert len(entries) == len(set(entries)) and set(entries) == pages
