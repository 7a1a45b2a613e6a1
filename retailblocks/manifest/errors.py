"""Where something sits in a manifest, and the one error every manifest problem is reported with.

A :class:`SourcePosition` names a file, a 1-based line and column, and the path inside the document
(``blocks[2].config.reservation_ttl``). :class:`ManifestError` renders one as a single line an
editor or a
terminal can jump to::

    shop/blocks.yaml:12:5: blocks[2].config.ttl: expected a duration like '15m' (got 'soon')
"""

from __future__ import annotations

from typing import Protocol

import attrs

from retailblocks.errors import InvalidInput


@attrs.frozen
class SourcePosition:
    """A place in a manifest: ``line`` and ``column`` are 1-based and ``None`` for the file as a
    whole."""

    file: str
    line: int | None = None
    column: int | None = None
    doc_path: str = ""

    def with_path(self, doc_path: str) -> SourcePosition:
        return attrs.evolve(self, doc_path=doc_path)

    def child(self, key: str | int) -> SourcePosition:
        """The same place, with ``key`` (a mapping key or a list index) appended to the document
        path."""
        return self.with_path(join_path(self.doc_path, key))

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class Positioned(Protocol):
    """Anything that knows where it was written, such as a
    :class:`~retailblocks.manifest.nodes.Node`."""

    @property
    def position(self) -> SourcePosition: ...


def join_path(doc_path: str, key: str | int) -> str:
    """Append a key or index to a document path: ``blocks`` + 2 → ``blocks[2]``, + ``use`` →
    ``blocks[2].use``."""
    if isinstance(key, int):
        return f"{doc_path}[{key}]"
    # Keys that would make the path ambiguous (dots, spaces, brackets) are quoted.
    plain = key and all(ch.isalnum() or ch in "_-" for ch in key)
    if not plain:
        return f"{doc_path}[{key!r}]"
    return f"{doc_path}.{key}" if doc_path else key


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ManifestError(InvalidInput):
    """A manifest that cannot be used: says which file, where in it, and what is wrong.

    ``line`` and ``column`` are 1-based, or ``None`` when the problem concerns the whole file (it is
    missing, too large, empty). ``doc_path`` is empty for problems that are not about one value.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str,
        line: int | None = None,
        column: int | None = None,
        doc_path: str = "",
    ) -> None:
        self.problem = _one_line(problem)
        self.file = file
        self.line = line
        self.column = column
        self.doc_path = doc_path
        super().__init__(self._render())

    @classmethod
    def at(cls, where: SourcePosition | Positioned, problem: str) -> ManifestError:
        """An error about the value at ``where``: a position, or anything with a ``position``."""
        position = where if isinstance(where, SourcePosition) else where.position
        return cls(
            problem,
            file=position.file,
            line=position.line,
            column=position.column,
            doc_path=position.doc_path,
        )

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.file, self.line, self.column, self.doc_path)

    def _render(self) -> str:
        place = str(self.position)
        if self.doc_path:
            return f"{place}: {self.doc_path}: {self.problem}"
        return f"{place}: {self.problem}"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only construction does not survive the default pickling of exceptions;
        # errors cross
        # process boundaries when a multi-process server reports a bad manifest.
        return (_rebuild, (self.problem, self.file, self.line, self.column, self.doc_path))


def _rebuild(problem: str, file: str, line: int | None, column: int | None, doc_path: str) -> ManifestError:
    return ManifestError(problem, file=file, line=line, column=column, doc_path=doc_path)
