"""The SDK reference (docs/reference/sdk.md, rendered by mkdocstrings) is complete: every
name `entrypoints.sdk` exports is on the page and has a docstring, and so does every public
method and property of the classes it exports. The source is read with griffe, as
mkdocstrings reads it, so what passes here is what the page shows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import griffe

import entrypoints.sdk

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "reference" / "sdk.md"


def _documented(obj: griffe.Object | griffe.Alias) -> bool:
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def undocumented(package: str, search_paths: Sequence[Path], preload: Sequence[str]) -> list[str]:
    """Paths (as exported) of the names in `package.__all__`, and of the public methods and
    properties of the classes among them, that have no docstring."""
    loader = griffe.GriffeLoader(search_paths=[str(p) for p in search_paths])
    for module in preload:
        loader.load(module)
    root = loader.load(package)
    loader.resolve_aliases(external=False, implicit=False)
    assert isinstance(root, griffe.Module)
    missing: list[str] = []
    for export in root.exports or ():
        name = str(export)
        member = root.members[name]
        target = member.final_target if isinstance(member, griffe.Alias) else member
        if not _documented(target):
            missing.append(f"{package}.{name}")
        if not isinstance(target, griffe.Class):
            continue
        for member_name, attribute in target.members.items():
            if member_name.startswith("_") or isinstance(attribute, griffe.Alias):
                continue  # private, or imported into the class body
            is_callable = attribute.is_function or "property" in attribute.labels
            if is_callable and not _documented(attribute):
                missing.append(f"{package}.{name}.{member_name}")
    return sorted(missing)


def test_every_exported_name_and_its_public_methods_have_docstrings() -> None:
    assert undocumented("entrypoints.sdk", [REPO], ["domain"]) == []


def test_every_exported_name_is_on_the_reference_page() -> None:
    shown = re.findall(r"^::: entrypoints\.sdk\.(\w+)$", PAGE.read_text(), re.MULTILINE)
    assert sorted(shown) == sorted(entrypoints.sdk.__all__)
    assert len(shown) == len(set(shown)), "a name shown twice"


def test_the_check_names_each_missing_docstring(tmp_path: Path) -> None:
    package = tmp_path / "pkgx"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""A package."""\n'
        "from pkgx.things import Told, Untold, shout, whisper\n"
        '__all__ = ["Told", "Untold", "shout", "whisper"]\n'
    )
    (package / "things.py").write_text(
        "class Told:\n"
        '    """Has one."""\n'
        "    size: int = 0\n"
        "    def said(self) -> None:\n"
        '        """Has one."""\n'
        "    def unsaid(self) -> None: ...\n"
        "    @property\n"
        "    def weight(self) -> int:\n"
        "        return 1\n"
        "    def _private(self) -> None: ...\n"
        "class Untold:\n"
        "    pass\n"
        "def shout() -> None:\n"
        '    """Has one."""\n'
        "def whisper() -> None: ...\n"
    )
    assert undocumented("pkgx", [tmp_path], []) == [
        "pkgx.Told.unsaid",
        "pkgx.Told.weight",
        "pkgx.Untold",
        "pkgx.whisper",
    ]
