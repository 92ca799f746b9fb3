"""The house rules that keep the core a product: no Airflow in it, no demo kit in it, no import cycle
inside it, and comments that a reader of this repository can follow (docs/ARCHITECTURE.md, "Rules of the
house")."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "include"
CORE = INCLUDE / "supporting_families"
DEMO_PACKAGES = ("sf_demo", "partner_simulator")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_airflow_import_in_core_source() -> None:
    offenders = [
        str(path.relative_to(CORE))
        for path in sorted(CORE.rglob("*.py"))
        if any(m == "airflow" or m.startswith("airflow.") for m in _imported_modules(path))
    ]
    assert offenders == []


def test_core_imports_without_airflow_loaded() -> None:
    # Import every core module in a fresh interpreter and check Airflow was not pulled in indirectly.
    modules = sorted(
        "supporting_families." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py" and not p.name.startswith("__main__")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the demo kit stays out of the product ----------------------------------------------------------------


def test_no_product_module_imports_the_demo_kit() -> None:
    offenders = sorted(
        f"{path.relative_to(CORE)} imports {module}"
        for path in CORE.rglob("*.py")
        for module in _imported_modules(path)
        if module.split(".")[0] in DEMO_PACKAGES
    )
    assert offenders == [], "the product must run without the demo kit (sf_demo)"


def test_the_product_imports_without_the_demo_kit_loaded() -> None:
    modules = sorted(
        "supporting_families." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py" and not p.name.startswith("__main__")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DEMO_PACKAGES!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- no import cycle inside the core ----------------------------------------------------------------------


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, inside functions and classes too; not those under ``if TYPE_CHECKING``,
    which never run."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so an import also counts as an import
    of the target's packages, except the importer's own (they are already being imported when it runs).
    """
    modules = {_module_name(package_dir, p): p for p in package_dir.rglob("*.py")}
    is_package = {name for name, p in modules.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        own_package = name if name in is_package else name.rpartition(".")[0]
        own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = own_package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        for target in targets:
            if target not in modules:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in modules and dep != name and dep not in own_ancestors:
                    graph[name].add(dep)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's cycles, one per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_the_core_has_no_import_cycle() -> None:
    cycles = import_cycles(import_graph(CORE))
    assert cycles == [], "import cycles inside supporting_families: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path / "pkg"


def test_the_cycle_guard_counts_imports_inside_functions(tmp_path: Path) -> None:
    # The shape the flat core had before it was re-housed: the ledger's CLI imported the anchors inside a
    # function, and the anchors imported the ledger at the top.
    pkg = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/ledger.py": """
                def cli_verify():
                    from pkg.ledger_anchors import read_anchors
                    return read_anchors
            """,
            "pkg/ledger_anchors.py": "from pkg.ledger import cli_verify\n",
        },
    )
    assert import_cycles(import_graph(pkg)) == [["pkg.ledger", "pkg.ledger_anchors"]]


def test_the_cycle_guard_sees_a_cycle_through_package_faces(tmp_path: Path) -> None:
    # a.x imports b.y, which runs b/__init__, which imports b.z, which imports a (its face imports a.x).
    pkg = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a/__init__.py": "from pkg.a.x import X\n",
            "pkg/a/x.py": "from pkg.b.y import Y\nX = 1\n",
            "pkg/b/__init__.py": "from pkg.b.z import Z\n",
            "pkg/b/y.py": "Y = 1\n",
            "pkg/b/z.py": "from pkg.a import X\nZ = 1\n",
        },
    )
    assert import_cycles(import_graph(pkg)) == [["pkg.a", "pkg.a.x", "pkg.b", "pkg.b.z"]]


def test_the_cycle_guard_allows_a_face_over_its_own_modules(tmp_path: Path) -> None:
    pkg = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a/__init__.py": "from pkg.a.x import X\nfrom pkg.a.y import Y\n",
            "pkg/a/x.py": "from pkg.a.y import Y\nX = Y\n",
            "pkg/a/y.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a.x import X\nY = 1\n"
            ),
        },
    )
    assert import_cycles(import_graph(pkg)) == []


# -- comments a reader of this repository can follow ------------------------------------------------------

#: Where prose lives: code, configuration, scripts and docs. The tracker's numbers mean nothing to a reader
#: of the repository, and neither do documents that are not in it.
PROSE_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".toml", ".c", ".md", ".txt", ".in", ".cfg"}
PROSE_ROOTS = ("include", "dags", "plugins", "scripts", "tests", "benchmarks", "docs", ".ci")
PROSE_FILES = ("Makefile", "README.md", "Dockerfile", "docker-compose.yml", "setup.py", "pyproject.toml")
ISSUE_CITATION = re.compile(r"\b[Ii]ssues?,?\s+(?:#?\d+|items?\s+\d+)")
#: Documents the shared design notes name that this repository does not carry.
FOREIGN_DOCUMENTS = re.compile(r"\bAIRFLOW-NOTES\b|\bSTYLE\.md\b|\bARCHITECTURE\b(?!\.md)")
#: A cited document: a Markdown file, or anything under docs/ (data file names such as ``batch.txt`` are not
#: citations).
DOCUMENT_REFERENCE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md|docs/[\w.-]+)\b")


def _prose_files() -> list[Path]:
    files = [REPO / name for name in PROSE_FILES if (REPO / name).is_file()]
    for root in PROSE_ROOTS:
        base = REPO / root
        if base.is_dir():
            files += [
                p
                for p in base.rglob("*")
                if p.is_file()
                and (p.suffix in PROSE_SUFFIXES or p.name == "run")
                and not any(part in {".venv", "__pycache__", "fixtures"} for part in p.parts)
                and p != Path(__file__).resolve()  # its own examples of what it refuses
            ]
    return sorted(files)


def _repository_documents() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return {Path(name).name for name in listed if name.endswith((".md", ".txt"))}


def _comment_offences(path: Path, text: str, names: set[str] | None = None) -> list[str]:
    offences = []
    names = _repository_documents() if names is None else names
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path.relative_to(REPO)}:{number}"
        if ISSUE_CITATION.search(line):
            offences.append(f"{where}: cites a tracker issue: {line.strip()[:80]}")
        if FOREIGN_DOCUMENTS.search(line):
            offences.append(f"{where}: cites a document outside the repository: {line.strip()[:80]}")
        for ref in (r.rstrip(".") for r in DOCUMENT_REFERENCE.findall(line)):
            if not (REPO / ref).exists() and Path(ref).name not in names:
                offences.append(f"{where}: cites {ref}, which is not in the repository")
    return offences


def test_comments_cite_only_what_a_reader_of_the_repository_can_follow() -> None:
    names = _repository_documents()
    offences = [
        o for path in _prose_files() for o in _comment_offences(path, path.read_text(errors="replace"), names)
    ]
    assert offences == [], "\n".join(offences[:40])


@pytest.mark.parametrize(
    ("line", "offends"),
    [
        ("# issue 5 item 6: a late return raises a visible alert", True),
        ("Issue 4 item 9; see the ledger", True),
        ("Share issue, item 7: a delivery is encrypted", True),
        ('"""The faults the simulator injects (issue 5 item 1)."""', True),
        ("# see docs/AIRFLOW-NOTES: windows of 32 MiB collapse downloads", True),
        ("# (ARCHITECTURE: partner servers, host keys pinned)", True),
        ("# see docs/NOWHERE.md", True),
        ("# see docs/ARCHITECTURE.md, transport", False),
        (
            "# Police agreement: name, DOB, postcode only (include/agreements/met-police-wider-help.yaml)",
            False,
        ),
        ("# UK GDPR Article 12(3): one month", False),
    ],
)
def test_the_comment_guard_catches_what_it_should(line: str, offends: bool, tmp_path: Path) -> None:
    path = REPO / "include" / "example.py"  # only named, never written
    assert bool(_comment_offences(path, line)) is offends
