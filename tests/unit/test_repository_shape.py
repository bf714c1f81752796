"""The repository stands alone and keeps its shape.

- No file refers to a path outside the repository (a sibling checkout, a machine's working directory, a
  Markdown link or a `Path(__file__).parents[N]` that climbs above the root): users and contributors get
  this repository and nothing beside it.
- Every relative link of the Markdown manual (README.md, CHANGELOG.md, docs/) leads to a file that exists.
- No module of `syncd` or of `bench` (the benchmark scripts and the packages beside them) is over 600 lines,
  and `syncd`'s modules import each other without cycles (docs/architecture.md).
- README.md stays a front page of at most 250 lines; the manual is docs/.

The files checked are the ones git tracks plus the new ones it would track (not ignored), so a file about to
be committed is checked too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 600
LENGTH_CHECKED = ("syncd", "bench")
"""The folders whose Python modules are held to MAX_MODULE_LINES, subpackages included."""
MAX_README_LINES = 250

# Written so that this file does not match its own patterns.
OUTSIDE_PATTERNS: dict[str, re.Pattern[str]] = {
    "a sibling 'shared' folder": re.compile(r"\.\.[/\\]+shared\b"),
    "a machine's working directory": re.compile(r"/wor[k]/"),
}
PARENTS = re.compile(r"\.parents\[(\d+)\]")
# [text](target) and [text](<target> "title"); images too. Reference definitions: [label]: target
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*(<[^>\n]*>|[^)\s]+)(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)")
REFERENCE_LINK = re.compile(r"^[ ]{0,3}\[[^\]\n]+\]:\s*(<[^>\n]*>|\S+)", re.MULTILINE)
FENCE = re.compile(r"^[ ]{0,3}(```|~~~).*?^[ ]{0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", "build", "dist"}


@cache
def repository_files() -> tuple[Path, ...]:
    """The repository's files, relative to ROOT: those git tracks and the untracked ones it does not ignore
    (deleted ones left out). Without git (an unpacked archive), every file but caches and virtualenvs."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listing = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8", errors="surrogateescape")
        names = sorted({name for name in listing.split("\0") if name})
        return tuple(Path(name) for name in names if (ROOT / name).is_file())
    return tuple(
        sorted(
            path.relative_to(ROOT)
            for path in ROOT.rglob("*")
            if path.is_file()
            and not any(
                part in SKIPPED_DIRS or part.endswith((".egg-info", "_cache")) or part.startswith(".")
                for part in path.relative_to(ROOT).parts[:-1]
            )
        )
    )


def text_of(relative: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte, or not UTF-8)."""
    raw = (ROOT / relative).read_bytes()
    if b"\0" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_files() -> Iterator[tuple[Path, str]]:
    for relative in repository_files():
        text = text_of(relative)
        if text is not None:
            yield relative, text


def markdown_files() -> list[Path]:
    return [relative for relative in repository_files() if relative.suffix.lower() in {".md", ".markdown"}]


def link_targets(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link outside code blocks and code spans."""

    # Blank out code, keeping newlines so that line numbers stay right.
    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    prose = CODE_SPAN.sub(blank, FENCE.sub(blank, markdown))
    for pattern in (INLINE_LINK, REFERENCE_LINK):
        for match in pattern.finditer(prose):
            target = match.group(1).strip()
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1].strip()
            yield prose.count("\n", 0, match.start()) + 1, target


def local_path(target: str) -> str | None:
    """The path part of a relative link, or None for an external link or a pure #anchor."""
    if not target or target.startswith("#") or EXTERNAL.match(target) or target.startswith("//"):
        return None
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    return path or None


def resolve_link(source: Path, path: str) -> Path:
    """Where a link of `source` (relative to ROOT) leads; "/x" means x at the repository's root."""
    base = ROOT if path.startswith("/") else (ROOT / source).parent
    return (base / path.lstrip("/")).resolve()


def inside_repository(path: Path) -> bool:
    return path == ROOT or ROOT in path.parents


def outside_references(relative: Path, text: str) -> list[str]:
    """Each line of `text` that refers to a path outside the repository, with why."""
    found: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        for what, pattern in OUTSIDE_PATTERNS.items():
            if pattern.search(line):
                found.append(f"{relative}:{number}: {what}: {line.strip()[:160]}")
        for match in PARENTS.finditer(line):
            # For a file d folders deep, Path(__file__).resolve().parents[d] is the root; beyond it the path
            # has left the repository.
            if "__file__" in line and int(match.group(1)) > len(relative.parts) - 1:
                found.append(
                    f"{relative}:{number}: parents[{match.group(1)}] climbs out of the repository: "
                    f"{line.strip()[:160]}"
                )
    if relative.suffix.lower() in {".md", ".markdown"}:
        for number, target in link_targets(text):
            path = local_path(target)
            if path is not None and not inside_repository(resolve_link(relative, path)):
                found.append(f"{relative}:{number}: a link leaves the repository: {target}")
    return found


def line_count(data: bytes) -> int:
    """Lines as `wc -l` counts them, plus a last line without its newline."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def module_lengths(package: Path) -> dict[str, int]:
    """Lines of every Python module under `package`, by path relative to ROOT."""
    return {
        str(path.relative_to(ROOT)): line_count(path.read_bytes())
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def import_cycles(imports: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative), each
    sorted, in sorted order. `imports` maps each module to the modules it imports directly."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(imports):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(imports.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(imports.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


# -- the tests -------------------------------------------------------------------------------------------


def test_the_files_are_listed() -> None:
    files = set(repository_files())
    assert Path("README.md") in files
    assert Path("pyproject.toml") in files
    assert Path(__file__).resolve().relative_to(ROOT) in files


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    found = [problem for relative, text in text_files() for problem in outside_references(relative, text)]
    assert not found, "files refer to paths outside the repository:\n" + "\n".join(found)


def test_every_relative_markdown_link_leads_to_a_file() -> None:
    broken: list[str] = []
    for relative in markdown_files():
        text = text_of(relative)
        if text is None:
            continue
        for number, target in link_targets(text):
            path = local_path(target)
            if path is not None and not resolve_link(relative, path).exists():
                broken.append(f"{relative}:{number}: {target}")
    assert not broken, "Markdown links that lead nowhere:\n" + "\n".join(broken)


@pytest.mark.parametrize("folder", LENGTH_CHECKED)
def test_no_module_is_over_600_lines(folder: str) -> None:
    lengths = module_lengths(ROOT / folder)
    assert lengths, f"no module found under {folder}/"
    over = {path: lines for path, lines in lengths.items() if lines > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them): " + ", ".join(
        f"{path} ({lines})" for path, lines in sorted(over.items(), key=lambda item: -item[1])
    )


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("syncd", cache_dir=None)
    modules = set(graph.modules)
    imports = {module: set(graph.find_modules_directly_imported_by(module)) & modules for module in modules}
    cycles = import_cycles(imports)
    described = []
    for cycle in cycles:
        members = set(cycle)
        edges = [
            f"    {importer} -> {imported} (line {detail['line_number']}: {detail['line_contents']})"
            for importer in cycle
            for imported in sorted(imports[importer] & members)
            for detail in graph.get_import_details(importer=importer, imported=imported)[:1]
        ]
        described.append(" <-> ".join(cycle) + "\n" + "\n".join(edges))
    assert not cycles, (
        "import cycles among syncd's modules (imports under TYPE_CHECKING and inside functions count too):\n"
        + "\n".join(described)
    )


def test_the_readme_is_a_front_page() -> None:
    lines = line_count((ROOT / "README.md").read_bytes())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move the detail into docs/"
    )


# -- the checkers themselves --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "line", "expected"),
    [
        ("README.md", "See [the design](" + ".." + "/shared/DESIGN.md).", 2),  # the pattern and the link
        ("docs/a.md", "[spec](../../spec/x.md)", 1),
        ("docs/a.md", "[spec](spec/x.md) and [up](../README.md)", 0),
        ("docs/a.md", "`[code](../../x)` is code, not a link", 0),
        ("tests/unit/t.py", "SPEC = Path(__file__).resolve().parents[" + "3] / 'shared' / 'x'", 1),
        ("tests/unit/t.py", "ROOT = Path(__file__).resolve().parents[2]", 0),
        ("bench/b.py", "ROOT = Path(__file__).resolve().parents[1]", 0),
        ("bench/b.py", "ROOT = Path(__file__).resolve().parents[2]", 1),
        ("Makefile", "cd " + "/wo" + "rk/main && make", 1),
        ("Makefile", "windows: .." + "\\" + "shared" + "\\" + "x", 1),
    ],
)
def test_outside_references_are_found(relative: str, line: str, expected: int) -> None:
    assert len(outside_references(Path(relative), line + "\n")) == expected


def test_links_in_code_blocks_are_not_links() -> None:
    text = 'a [x](one.md)\n```\n[y](two.md)\n```\nb [z](<three four.md> "t")\n[ref]: five.md#part\n'
    assert list(link_targets(text)) == [(1, "one.md"), (5, "three four.md"), (6, "five.md#part")]


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("https://example.com/x", None),
        ("mailto:a@example.com", None),
        ("#anchor", None),
        ("docs/x.md#part", "docs/x.md"),
        ("docs/a%20b.md", "docs/a b.md"),
    ],
)
def test_local_path(target: str, path: str | None) -> None:
    assert local_path(target) == path


def test_import_cycles_are_strongly_connected_components() -> None:
    imports = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": {"e"},
        "e": {"d"},
        "f": {"a"},
        "g": {"g"},  # a self-import is not a cycle between modules
    }
    assert import_cycles(imports) == [["a", "b", "c"], ["d", "e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(("data", "lines"), [(b"", 0), (b"a\n", 1), (b"a\nb", 2), (b"a\x0cb\r\n\n", 2)])
def test_lines_are_counted_like_wc(data: bytes, lines: int) -> None:
    assert line_count(data) == lines
