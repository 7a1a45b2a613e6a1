"""Where something sits in a manifest, and the one error every manifest problem is reported with.

A :class:`SourcePosition` names a file, a 1-based line and column, and the path inside the document
(``blocks[2].config.reservation_ttl``). :class:`ManifestError` renders one as a single line an
editor or a
terminal can jump to::

    shop/blocks.yaml:12:5: blocks[2].config.ttl: expected a duration like '15m' (got 'soon')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import attrs

from retailblocks.errors import InvalidInput

T = TypeVar("T")


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


class ManifestProblems:
    """Collects the independent problems of a manifest, so that all of them are reported at once.

    Each independent part is checked with :meth:`attempt`; a part that needs another (prices need the
    merchant's currency) is checked only when that one succeeded, so that no problem is reported twice
    or as a consequence of another.
    """

    def __init__(self) -> None:
        self.errors: list[ManifestError] = []

    def attempt(self, check: Callable[[], T]) -> T | None:
        """What ``check`` returns, or None after noting the ManifestError it raised."""
        try:
            return check()
        except ManifestError as error:
            self.errors.append(error)
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise ManifestError.combine(self.errors)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ManifestError(InvalidInput):
    """A manifest that cannot be used: says which file, where in it, and what is wrong.

    ``line`` and ``column`` are 1-based, or ``None`` when the problem concerns the whole file (it is
    missing, too large, empty). ``doc_path`` is empty for problems that are not about one value.

    A manifest with several independent problems is reported at once, as a compiler reports a file:
    the error is the first problem, and :attr:`problems` lists them all (itself first), each rendered
    on a line of its own by ``str()``.
    """

    more: tuple[ManifestError, ...] = ()

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

    @classmethod
    def combine(cls, errors: Sequence[ManifestError]) -> ManifestError:
        """One error for ``errors`` (at least one): the first, carrying every problem of them all."""
        first = errors[0]
        problems = [problem for error in errors for problem in error.problems]
        combined = cls(first.problem, file=first.file, line=first.line, column=first.column, doc_path=first.doc_path)
        combined.more = tuple(problems[1:])
        combined.args = (str(combined),)
        return combined

    @property
    def problems(self) -> tuple[ManifestError, ...]:
        """Every problem this error reports, itself first, each as an error of its own (one line)."""
        return (self._single(), *self.more) if self.more else (self,)

    def _single(self) -> ManifestError:
        return ManifestError(self.problem, file=self.file, line=self.line, column=self.column, doc_path=self.doc_path)

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.file, self.line, self.column, self.doc_path)

    def _render(self) -> str:
        place = str(self.position)
        if self.doc_path:
            return f"{place}: {self.doc_path}: {self.problem}"
        return f"{place}: {self.problem}"

    def __str__(self) -> str:
        # The first line is the first problem, as when there was only ever one.
        return "\n".join([self._render(), *(str(problem) for problem in self.more)])

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only construction does not survive the default pickling of exceptions;
        # errors cross
        # process boundaries when a multi-process server reports a bad manifest.
        return (_rebuild, (self.problem, self.file, self.line, self.column, self.doc_path, self.more))


def _rebuild(
    problem: str,
    file: str,
    line: int | None,
    column: int | None,
    doc_path: str,
    more: tuple[ManifestError, ...] = (),
) -> ManifestError:
    error = ManifestError(problem, file=file, line=line, column=column, doc_path=doc_path)
    if more:
        error.more = more
        error.args = (str(error),)
    return error
