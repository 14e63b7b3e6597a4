"""Load one YAML document safely and keep where each value came from.

Every user mistake must be reported with file, line and field. A file is read one of two ways:

- exactly: PyYAML's node tree (composed by libyaml where PyYAML has it, by the pure loader otherwise,
  whose messages and line numbers the errors are written for) and the value constructed from that
  same tree; `line_of` maps a field path (as pydantic reports it) back to a line;
- fast, for large manifests: `yaml_rs` (a YAML parser in Rust) builds the value without positions,
  about ten times faster than libyaml composing PyYAML's nodes, and in a fraction of the memory when
  a long top-level block sequence (`bindings:`, `signatures:`) is read a slice of entries at a time
  (benchmarks/manifest_load.py measures the candidates). It is used only where it certainly gives the
  value the exact reading would (see `read_fast`); otherwise, and for every error, the exact
  reading decides and reports.

Lines of a fast document are found when asked for, which is rarely (a plan names the lines of its
changes, not of 40,000 bindings): an entry of a top-level block sequence is found by its `- ` at the
sequence's indentation (the slices above prove those are the entries) and read exactly on its own;
any other path reads the whole document exactly, once.

Safety: only safe loaders are used; the file is read through `inputfile.read_input` (regular files
only, symbolic links only within their folder); a file larger than `MAX_FILE_BYTES`, a document that expands
(through aliases) to more than `MAX_NODES` nodes, or a nesting deeper than `MAX_DEPTH` is refused
before anything else looks at it. The fast reading takes no document with tags, anchors, aliases,
merge keys, directives, several documents, tabs, a byte order mark, a line break other than \\n or a
character the YAML reader refuses: those are read exactly, which refuses or reads them as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from reconciler.errors import ManifestError
from reconciler.gcrelax import fewer_cyclic_collections
from reconciler.inputfile import InputFileError, read_input

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 500_000
MAX_DEPTH = 32
BYTES_PER_SLICE = 256 * 1024


class YamlLines:
    """The lines of one document's values, without the values: what a lazily found line needs kept."""

    def __init__(self, path: str, text: str, root: Node | None, sequences: dict[str, _BlockSequence]) -> None:
        self.path = path
        self._text = text
        self._root = root
        self._sequences = sequences
        self._starts: dict[str, tuple[list[int], list[int]]] = {}  # key -> offset and line of each entry
        self._entries: dict[tuple[str, int], Node] = {}

    def root(self) -> Node:
        if self._root is None:
            self._root, _ = read_exact(self.path, self._text)
        return self._root

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of the deepest node reachable along `loc` (1-based)."""
        if self._root is None and len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
            line = self._entry_line(loc[0], loc[1], loc[2:])
            if line is not None:
                return line
        return _deepest_node(self.root(), loc).start_mark.line + 1

    def _entry_line(self, key: str, index: int, rest: Sequence[str | int]) -> int | None:
        sequence = self._sequences.get(key)
        if sequence is None:
            return None
        if key not in self._starts:
            entry_starts = sequence.entries()
            self._starts[key] = entry_starts, _lines_of_offsets(self._text, entry_starts)
        starts, first_lines = self._starts[key]
        if not 0 <= index < len(starts):
            return None
        node = self._entries.get((key, index))
        if node is None:
            stop = starts[index + 1] if index + 1 < len(starts) else sequence.end
            try:
                node, _ = read_exact(self.path, self._text[starts[index]:stop])
            except ManifestError:
                return None
            self._entries[(key, index)] = node
        return first_lines[index] - 1 + _deepest_node(node, (0, *rest)).start_mark.line + 1


class YamlDocument:
    """One document: its value (`data`) and the lines of its values (`line_of`, `lines`)."""

    def __init__(self, path: str, data: Any, root: Node | None = None, *, text: str = "",
                 sequences: dict[str, _BlockSequence] | None = None) -> None:
        self.path = path
        self.data = data
        self.lines = YamlLines(path, text, root, sequences or {})

    @property
    def exact(self) -> bool:
        """Whether the document was read exactly (a fast document's value is the same, when it is used)."""
        return self.lines._root is not None

    def exactly(self) -> YamlDocument:
        """This document read exactly (itself when it was); raises the ManifestError the exact reading finds."""
        if self.exact:
            return self
        root, data = read_exact(self.path, self.lines._text)
        return YamlDocument(self.path, data, root)

    @property
    def root(self) -> Node:
        return self.lines.root()

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of the deepest node reachable along `loc` (1-based)."""
        return self.lines.line_of(loc)

    def item_lines(self, loc: Sequence[str | int], count: int) -> list[int]:
        """`line_of(loc + (i,))` for each i below `count`, walking to the sequence once (a manifest
        can list 100,000 APIs, and walking from the root for each was a large share of loading it)."""
        if not self.exact:
            return [self.line_of((*loc, i)) for i in range(count)]
        node = _deepest_node(self.root, loc)
        items = node.value if isinstance(node, SequenceNode) else []
        own = node.start_mark.line + 1
        return [items[i].start_mark.line + 1 if i < len(items) else own for i in range(count)]


def _deepest_node(root: Node, loc: Sequence[str | int]) -> Node:
    node = root
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return node


def _lines_of_offsets(text: str, offsets: list[int]) -> list[int]:
    lines: list[int] = []
    line = 1
    previous = 0
    for offset in offsets:
        line += text.count("\n", previous, offset)
        lines.append(line)
        previous = offset
    return lines


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


# ---------------------------------------------------------------- the fast reading

# Where PyYAML (YAML 1.1) and yaml_rs (YAML 1.2) may read the same text differently, the document goes
# to the exact reading: a character the YAML reader refuses, a tab, a byte order mark, a line break other
# than \n; anything that may be a tag, an anchor or alias (and so an alias bomb), a merge key, a
# directive, a complex key or a document marker. (`_INDICATOR` is the cheap test; `_TOKEN` looks closer.)
_NOT_READ_FAST = "[^\n\x20-\x7E\xA0-\u2027\u202A-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD\U00010000-\U0010FFFF]"
_INDICATOR = re.compile(r"[!&*<%?]")
# The same two tests for ASCII text, as C string operations (far faster than the expressions on a large
# manifest): the bytes that may be read fast, and the indicators.
_ASCII_READ_FAST = bytes([0x0A, *range(0x20, 0x7F)])
_ASCII_INDICATORS = "!&*<%?"
_TOKEN = re.compile(r"(?:^|[\s\[\]{},])[!&*%?]|<<", re.MULTILINE)
# A string that PyYAML's resolver would, written plain, read as another type (yes/no/on/off, 1_000, 1:30,
# dates, `=`, `~`, the empty string): PyYAML may have read it as that type, so it is left to PyYAML.
# The lookahead first turns away digits followed by a, c, d or f, which no number or date has (a hexadecimal
# int begins `0x`): most API ids begin so, and the resolvers' expressions took twice as long on them.
_TYPED_BY_PYYAML = re.compile("(?![0-9][0-9_]*[acdf])(?:" + "|".join(sorted({
    f"(?:{rx.pattern})" for resolvers in Resolver.yaml_implicit_resolvers.values() for _, rx in resolvers})) + ")",
    re.VERBOSE)
_TYPED_FIRST = frozenset(Resolver.yaml_implicit_resolvers) - {None}
# A top-level key whose value starts on the next line, and the first `-` of a block sequence there.
_BLOCK_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)[ ]*:[ ]*(?:#[^\n]*)?\n")
_FIRST_ITEM = re.compile(r"(?:[ ]*(?:#[^\n]*)?\n)*([ ]*)-[ \n]")
_TOP_LEVEL = re.compile(r"\n[^\s#-]")

# Smaller files are read exactly: libyaml is quick enough there, and `validate` of a few small
# manifests then starts without importing yaml_rs.
FAST_FROM_BYTES = 4 * 1024


def _region_end(text: str, offset: int) -> int:
    """Where the top-level value that `offset` lies in ends: at the next top-level key, or the end."""
    found = _TOP_LEVEL.search(text, max(offset - 1, 0))
    return found.start() + 1 if found else len(text)


class _BlockSequence:
    """A top-level key whose value is a block sequence: where the value's text lies and how its entries begin.

    Only a guess until `read_fast` has read each slice of it."""

    def __init__(self, text: str, start: int, end: int, indent: str) -> None:
        self.text = text
        self.start = start  # the first entry's line
        self.end = end
        self._dash = f"\n{indent}-"

    def count(self, start: int, stop: int) -> int:
        """Entries beginning in text[start:stop] (`start` at the beginning of a line)."""
        return self.text.count(self._dash + " ", start - 1, stop - 1) + self.text.count(self._dash + "\n", start - 1,
                                                                                           stop - 1)

    def next_entry(self, offset: int) -> int:
        """The first entry beginning at or after `offset` (or `end`)."""
        while True:
            found = self.text.find(self._dash, offset - 1, self.end - 1)
            if found < 0:
                return self.end
            if self.text[found + len(self._dash)] in " \n":
                return found + 1
            offset = found + 2

    def entries(self) -> list[int]:
        """Where each entry begins."""
        starts = [self.start]
        while True:
            found = self.next_entry(starts[-1] + 1)
            if found >= self.end:
                return starts
            starts.append(found)


def _block_sequences(text: str) -> dict[str, _BlockSequence]:
    """Top-level keys whose value is a block sequence (a guess, see `_BlockSequence`)."""
    found: dict[str, _BlockSequence] = {}
    line = 0  # the start of a top-level line (or of the text); each top-level value is scanned once
    while line < len(text):
        end = _region_end(text, line + 1)
        head = _BLOCK_KEY.match(text, line)
        if head is not None and head.end() <= end:
            first = _FIRST_ITEM.match(text, head.end())
            if first is not None and head.group(1) not in found:
                found[head.group(1)] = _BlockSequence(text, first.start(1), end, first.group(1))
        line = end
    return found


def _loads(text: str) -> Any:
    """yaml_rs's value of `text`; raises ValueError for anything it does not read."""
    import yaml_rs

    try:
        return yaml_rs.loads(text, parse_datetime=False)
    except BaseException as exc:  # a panic in the Rust parser arrives as pyo3's PanicException
        if isinstance(exc, ValueError) or type(exc).__name__ == "PanicException":
            raise ValueError("not read") from None
        raise


def read_fast(text: str) -> tuple[dict[str, Any], dict[str, _BlockSequence]] | None:
    """The document's value through yaml_rs, when it is certainly the value the exact reading gives, and
    the entries of its top-level block sequences; else None.

    Each top-level block sequence is read a slice of about `BYTES_PER_SLICE` at a time (the parser
    holds a whole document's tree besides the value, 70 MB for 4 MB of bindings), and the rest of the
    document without them. The guess of where entries start is proven right when every slice reads
    as a sequence of exactly as many entries as it was cut at (a `-` inside a quoted scalar would
    make fewer, or a slice that does not read). Besides the text checks above, the value must hold
    only mappings with string keys, sequences, strings, booleans and nulls (the two YAML versions read
    some numbers differently), no string PyYAML would type, no nesting deeper than `MAX_DEPTH` and no
    more than `MAX_NODES` nodes.
    """
    if not _plain_text(text):
        return None
    sequences = _block_sequences(text)
    try:
        with fewer_cyclic_collections():
            data = _read_in_slices(text, sequences)
    except ValueError:
        return None
    if data is None:
        return None
    strings = _plain_values(data)
    if strings is None or _typed_by_pyyaml(strings):
        return None
    return data, sequences


def _plain_text(text: str) -> bool:
    """Whether `text` has none of what the fast reading leaves to the exact one: characters the YAML reader
    refuses, tabs, CR, BOM, tags, anchors, aliases, merge keys, directives, several documents."""
    if text.isascii():
        refused = bool(text.encode("ascii").translate(None, _ASCII_READ_FAST))
        indicator = any(character in text for character in _ASCII_INDICATORS)
    else:
        refused, indicator = re.search(_NOT_READ_FAST, text) is not None, _INDICATOR.search(text) is not None
    if refused or (indicator and _TOKEN.search(text)):
        return False
    return not (text.startswith(("---", "...")) or "\n---" in text or "\n..." in text)


def _read_in_slices(text: str, sequences: dict[str, _BlockSequence]) -> dict[str, Any] | None:
    """The value of `text`: its top-level block sequences a slice at a time, the rest in one piece; None when
    a slice does not hold exactly the entries it was cut at (raises ValueError for what yaml_rs does not read)."""
    rest: list[str] = []
    previous = 0
    for sequence in sorted(sequences.values(), key=lambda q: q.start):
        rest.append(text[previous:sequence.start])
        previous = sequence.end
    rest.append(text[previous:])
    data = _loads("".join(rest))
    if not isinstance(data, dict) or not data:
        return None
    for key, sequence in sequences.items():
        if data.get(key, ...) is not None:
            return None
        entries: list[Any] = []
        start = sequence.start
        while start < sequence.end:
            stop = sequence.next_entry(start + BYTES_PER_SLICE)
            part = _loads(text[start:stop])
            if not isinstance(part, list) or len(part) != sequence.count(start, stop):
                return None
            entries += part
            start = stop
        data[key] = entries
    return data


def _typed_by_pyyaml(strings: list[str]) -> bool:
    """Whether PyYAML may have read any of `strings`, written plain, as another type."""
    first = _TYPED_FIRST
    # Matched through `map`, not a Python loop: every API id that begins with a digit is a candidate.
    return any(map(_TYPED_BY_PYYAML.match, [value for value in set(strings) if not value or value[0] in first]))


def _plain_values(data: dict[str, Any]) -> list[str] | None:
    """Every key and string of `data`, level by level; None when `data` holds anything but mappings with
    string keys, sequences, strings, booleans and nulls, nests deeper than `MAX_DEPTH` or counts more than
    `MAX_NODES` nodes (as `_check_shape` counts them)."""
    strings: list[str] = []
    count = 1
    level: list[Any] = [data]
    depth = 1
    while level:
        deeper: list[Any] = []
        for container in level:
            if type(container) is dict:
                count += 2 * len(container)
                strings += container
                values = container.values()
            else:
                count += len(container)
                values = container
            for value in values:
                kind = type(value)
                if kind is str:
                    strings.append(value)
                elif kind is dict or kind is list:
                    deeper.append(value)
                elif kind is not bool and value is not None:
                    return None
        if count > MAX_NODES or (depth >= MAX_DEPTH and any(level)):
            return None
        level = deeper
        depth += 1
    if set(map(type, strings)) != {str}:  # a key that is not a string
        return None
    return strings


def read_exact(name: str, text: str) -> tuple[Node, Any]:
    """PyYAML's node tree and the value built from it; every problem is a ManifestError with its line."""
    fast = _parse_with_libyaml(name, text)
    if fast is not None:
        return fast
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
    return root, data


def load_yaml_document(path: Path) -> YamlDocument:
    """Parse exactly one YAML document from `path`; every failure is a ManifestError."""
    return parse_yaml_document(str(path), read_yaml_bytes(path))


def read_yaml_bytes(path: Path) -> bytes:
    """The bytes of the manifest `path`, with the input file rails (size, kind of file); a ManifestError else."""
    try:
        return read_input(path, limit=MAX_FILE_BYTES, what="manifest")
    except InputFileError as exc:
        raise ManifestError(str(path), None, None, exc.reason) from None


def parse_yaml_document(name: str, raw: bytes) -> YamlDocument:
    """Parse exactly one YAML document from `raw`, the bytes of the file `name`; every failure is a ManifestError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(name, line, None, "file is not UTF-8 text") from None
    if "\x00" in text:
        raise ManifestError(name, text[: text.index("\x00")].count("\n") + 1, None,
                            "file contains NUL bytes (binary, not YAML)")
    fast = read_fast(text) if len(raw) >= FAST_FROM_BYTES else None
    if fast is not None:
        return YamlDocument(name, fast[0], text=text, sequences=fast[1])
    root, data = read_exact(name, text)
    return YamlDocument(name, data, root)
