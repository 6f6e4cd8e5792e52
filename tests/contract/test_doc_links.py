"""Every relative link in README.md and docs/*.md points at something inside the repository.

A link that climbs above the repository root (``../shared/...``) is dead in every clone; a
link to a file that does not exist, or to an ``#anchor`` that no heading of the target makes,
is dead everywhere. Web links (``https:``, ``mailto:``) are not fetched: that needs a network.

Anchors follow GitHub's rule for headings: the heading's text, lower-cased, with everything
but letters, digits, ``_``, ``-`` and spaces removed and each space turned into ``-``; a
repeated heading gets ``-1``, ``-2``, ... Links and headings inside fenced code blocks and
inline code are text, not links.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML_LINK = re.compile(r"""<a\s[^>]*href=["']([^"']+)["']""", re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1) == fence:
                fence = None
        elif opened:
            fence = opened.group(1)
        else:
            yield number, line


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link reads as its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor the headings of a Markdown text make."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _outside_fences(text):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link, image, reference definition and ``<a href>``."""
    for number, raw in _outside_fences(text):
        line = _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), raw)  # code is text
        for pattern in (_LINK, _HTML_LINK):
            for match in pattern.finditer(line):
                yield number, match.group(1)
        reference = _REFERENCE.match(line)
        if reference is not None:
            yield number, reference.group(1)


@dataclass(frozen=True)
class DeadLink:
    source: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.target}: {self.why}"


def why_dead(root: Path, document: Path, target: str) -> str | None:
    """Why the link ``target`` in ``document`` is dead, or None when it resolves."""
    if _SCHEME.match(target):
        return None  # a web address (or mailto:), not a file of the repository
    path_part, _, anchor = target.partition("#")
    if path_part.startswith("/"):
        return "an absolute path; link relative to this file"
    resolved = (document.parent / path_part).resolve() if path_part else document
    return _missing_file(root, resolved) or (_missing_anchor(resolved, anchor) if anchor else None)


def _missing_file(root: Path, resolved: Path) -> str | None:
    if not resolved.is_relative_to(root):
        return "leaves the repository"
    if not resolved.exists():
        return f"no such file: {resolved.relative_to(root).as_posix()}"
    return None


def _missing_anchor(resolved: Path, anchor: str) -> str | None:
    if resolved.is_dir() or resolved.suffix.lower() != ".md":
        return "an anchor into something that is not a Markdown file"
    if anchor not in anchors(resolved.read_text(encoding="utf-8")):
        return f"no heading makes the anchor #{anchor}"
    return None


def dead_links(root: Path, documents: list[Path]) -> list[DeadLink]:
    """The links of ``documents`` that leave ``root``, or name a missing file or anchor."""
    root = root.resolve()
    dead: list[DeadLink] = []
    for document in (path.resolve() for path in documents):
        source = document.relative_to(root).as_posix()
        for line, target in links(document.read_text(encoding="utf-8")):
            why = why_dead(root, document, target)
            if why is not None:
                dead.append(DeadLink(source, line, target, why))
    return dead


def _documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def test_readme_and_docs_link_only_to_what_exists_in_the_repository() -> None:
    dead = dead_links(ROOT, _documents(ROOT))
    assert not dead, "dead links:\n" + "\n".join(str(link) for link in dead)


def test_there_are_docs_to_check() -> None:
    names = {path.name for path in _documents(ROOT)}
    assert {"README.md", "architecture.md", "requirements.md"} <= names


# The checker itself, on documents made for the purpose.


def _write(root: Path, files: dict[str, str]) -> list[Path]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return _documents(root)


def test_links_that_resolve_are_accepted(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    documents = _write(
        repo,
        {
            "README.md": (
                "# Title\n\nSee [the guide](docs/guide.md#set-up-r1--r34), "
                "[code](src/app.py), [a folder](src/), [here](#title), "
                "[the web](https://example.org/x.md#nowhere) and <a href='docs/guide.md'>x</a>.\n"
            ),
            "docs/guide.md": (
                "# Guide\n\n## Set up: `R1` \u2013 R34\n\n"
                "Back to the [readme](../README.md#title); "
                "[twice](#step) and [again](#step-1).\n\n## Step\n\n## Step\n"
            ),
            "src/app.py": "",
        },
    )
    assert dead_links(repo, documents) == []


@pytest.mark.parametrize(
    ("link", "why"),
    [
        ("../shared/DESIGN.md", "leaves the repository"),
        ("docs/../../outside.md", "leaves the repository"),
        ("/etc/passwd", "an absolute path; link relative to this file"),
        ("docs/missing.md", "no such file: docs/missing.md"),
        ("docs/guide.md#no-such-heading", "no heading makes the anchor #no-such-heading"),
        ("#nowhere", "no heading makes the anchor #nowhere"),
        ("src/app.py#L1", "an anchor into something that is not a Markdown file"),
    ],
)
def test_a_dead_or_escaping_link_is_reported_with_its_place(
    tmp_path: Path, link: str, why: str
) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "outside.md").write_text("# Outside\n", encoding="utf-8")
    documents = _write(
        repo,
        {
            "README.md": f"# Title\n\nText.\nSee [this]({link}).\n",
            "docs/guide.md": "# Guide\n",
            "src/app.py": "",
        },
    )
    assert [str(d) for d in dead_links(repo, documents)] == [f"README.md:4: {link}: {why}"]


def test_links_and_headings_in_code_are_text(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    documents = _write(
        repo,
        {
            "README.md": (
                "# Title\n\n```sh\n[not a link](missing.md)\n# not a heading\n```\n\n"
                "Inline `[not a link](missing.md)` either. [Fine](#title), "
                "[not fine](#not-a-heading).\n"
            ),
        },
    )
    assert [str(d) for d in dead_links(repo, documents)] == [
        "README.md:8: #not-a-heading: no heading makes the anchor #not-a-heading"
    ]
