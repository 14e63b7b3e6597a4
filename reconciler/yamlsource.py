"""Load one YAML document safely and keep where each value came from.

Every user mistake must be reported with file, line and field, so a document is
parsed once into PyYAML's node tree (which carries line numbers) and the plain
Python value is constructed from that same tree. `line_of` then maps a field
path (as pydantic reports it) back to a line.

Safety: only the safe loader is used; the file is read through `inputfile.read_input` (regular
files only, symbolic links only within their folder); a file larger than `MAX_FILE_BYTES`, a
document that expands (through aliases) to more than `MAX_NODES` nodes, or a
nesting deeper than `MAX_DEPTH` is refused before anything else looks at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import ManifestError
from reconciler.inputfile import InputFileError, read_input

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 500_000
MAX_DEPTH = 32


@dataclass(frozen=True)
class YamlDocument:
    path: str
    data: Any
    root: Node

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of the deepest node reachable along `loc` (1-based)."""
        return self._deepest_node(loc).start_mark.line + 1

    def item_lines(self, loc: Sequence[str | int], count: int) -> list[int]:
        """`line_of(loc + (i,))` for each i below `count`, walking to the sequence once (a manifest
        can list 100,000 APIs, and walking from the root for each was a large share of loading it)."""
        node = self._deepest_node(loc)
        items = node.value if isinstance(node, SequenceNode) else []
        own = node.start_mark.line + 1
        return [items[i].start_mark.line + 1 if i < len(items) else own for i in range(count)]

    def _deepest_node(self, loc: Sequence[str | int]) -> Node:
        node = self.root
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return node


def _child(node: Node, part: str | int) -> Node | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
    elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def _check_shape(path: str, root: Node) -> None:
    """Refuse alias bombs, absurd nesting and duplicate mapping keys (PyYAML keeps the last silently)."""
    count = 0
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ManifestError(path, node.start_mark.line + 1, None,
                                f"document expands to more than {MAX_NODES} values (YAML aliases?)")
        if depth > MAX_DEPTH:
            raise ManifestError(path, node.start_mark.line + 1, None,
                                f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in seen:
                        raise ManifestError(path, key.start_mark.line + 1, key.value, "duplicate key")
                    seen.add(key.value)
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _parse_with_libyaml(name: str, text: str) -> tuple[Node, Any] | None:
    """Node tree and value through libyaml, five times faster than the pure-Python loader on a
    large manifest; None when PyYAML lacks libyaml or the document has any problem, so that the
    pure loader, whose messages and line numbers the errors are written for, reports it.

    libyaml composes nodes recursively in C and crashes the process on deep nesting, so the depth
    is measured first on its (iterative) event stream.
    """
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return None
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        loader = yaml.CSafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return None
            _check_shape(name, root)
            return root, loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return None


def load_yaml_document(path: Path) -> YamlDocument:
    """Parse exactly one YAML document from `path`; every failure is a ManifestError."""
    name = str(path)
    try:
        raw = read_input(path, limit=MAX_FILE_BYTES, what="manifest")
    except InputFileError as exc:
        raise ManifestError(name, None, None, exc.reason) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(name, line, None, "file is not UTF-8 text") from None
    if "\x00" in text:
        raise ManifestError(name, text[: text.index("\x00")].count("\n") + 1, None,
                            "file contains NUL bytes (binary, not YAML)")
    fast = _parse_with_libyaml(name, text)
    if fast is not None:
        return YamlDocument(path=name, data=fast[1], root=fast[0])
    try:
        loader = yaml.SafeLoader(text)  # checks every character at once
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ManifestError(name, line, None, f"character U+{exc.character:04X} is not allowed in YAML") from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise ManifestError(name, None, None, "file is empty (expected a manifest with 'region')")
        _check_shape(name, root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        error_line = mark.line + 1 if mark is not None else None
        raise ManifestError(name, error_line, None, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(name, None, None, f"YAML error: {exc}") from None
    except RecursionError:
        # PyYAML composes recursively, so thousands of levels exhaust the stack before `_check_shape`
        # runs; the reader has stopped where the nesting got too deep.
        raise ManifestError(name, loader.line + 1, None, f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    return YamlDocument(path=name, data=data, root=root)
