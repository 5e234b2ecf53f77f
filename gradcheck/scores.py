"""What a mutation run found: each mutant's result, and the score of a case, as text and JSON.

:mod:`gradcheck.mutation` makes them; :class:`MutationScore` prints as the table a user reads
(per bug class, caught of total; the resolution; each missed mutant with its reason) and
``to_dict()`` is its JSON record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gradcheck.mutants import BUG_CLASSES

__all__ = ["MutantResult", "MutationScore", "MutationScoreTooLow"]


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MutantResult:
    """One mutant: its bug class, the gradient(s) it broke (``W``, ``W axis 1``, ``Wx, Wh``),
    δ for the "scaled" ones, whether some example's check caught it, and for a missed one why
    (one line); for one caught because the check raised, what it raised."""

    bug_class: str
    target: str
    delta: float | None
    caught: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self) -> str:
        delta = f" δ={self.delta:g}" if self.delta is not None else ""
        return f"{self.bug_class} {self.target}{delta}: {self.reason}"


@dataclass(frozen=True)
class MutationScore:
    """What a case's settings catch: ``results`` one per mutant, ``score`` the share caught,
    ``resolution`` the smallest δ at which every "scaled" mutant (and every larger δ) was
    caught (None: not even δ=1). ``not_applicable`` maps each bug class without mutants to why;
    ``equivalent`` lists mutants that changed no gradient at any example (not counted).
    ``error``: the unmutated check failed or raised, so nothing was scored."""

    case: str
    results: tuple[MutantResult, ...]
    score: float
    resolution: float | None
    layer: str = "?"
    examples: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    equivalent: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0

    @property
    def caught(self) -> int:
        return sum(r.caught for r in self.results)

    @property
    def missed(self) -> list[MutantResult]:
        return [r for r in self.results if not r.caught]

    def by_class(self) -> dict[str, tuple[int, int]]:
        """Each bug class with mutants: (caught, total), in catalogue order."""
        out: dict[str, tuple[int, int]] = {}
        for name in BUG_CLASSES:
            rows = [r for r in self.results if r.bug_class == name]
            if rows:
                out[name] = (sum(r.caught for r in rows), len(rows))
        return out

    def _classes(self) -> dict[str, dict[str, Any]]:
        counts = self.by_class()
        return {
            name: (
                {"caught": counts[name][0], "total": counts[name][1]}
                if name in counts
                else {"not_applicable": self.not_applicable.get(name, "")}
            )
            for name in BUG_CLASSES
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` record of this case."""
        return {
            "case": self.case,
            "layer": self.layer,
            "score": self.score,
            "caught": self.caught,
            "total": len(self.results),
            "resolution": self.resolution,
            "examples": self.examples,
            "settings": dict(self.settings),
            "classes": self._classes(),
            "equivalent": list(self.equivalent),
            "mutants": [r.to_dict() for r in self.results],
            "error": self.error,
            "seconds": self.seconds,
        }

    def headline(self) -> str:
        if self.error is not None:
            return f"{self.case} ({self.layer}): not scored: {self.error}"
        resolution = "none" if self.resolution is None else f"δ={self.resolution:g}"
        return (
            f"{self.case} ({self.layer}): score {self.score:.2f} ({self.caught}/"
            f"{len(self.results)} caught), resolution {resolution}, "
            f"{self.examples} example{'s' * (self.examples != 1)}"
        )

    def __str__(self) -> str:
        lines = [self.headline()]
        if self.error is not None:
            return lines[0]
        counts = self.by_class()
        for name in BUG_CLASSES:
            if name in counts:
                c, n = counts[name]
                extra = ""
                if name == "scaled":
                    extra = "  resolution " + (
                        "none" if self.resolution is None else f"δ={self.resolution:g}"
                    )
                lines.append(f"  {name:<15} {c:>3}/{n:<3}{extra}".rstrip())
            else:
                why = self.not_applicable.get(name, "")
                lines.append(f"  {name:<15} n/a      {why}")
        if self.equivalent:
            lines.append(
                f"  not counted (changed no gradient at these examples): "
                f"{', '.join(self.equivalent)}"
            )
        for r in self.missed:
            lines.append(f"  missed: {r.line()}")
        return "\n".join(lines)


class MutationScoreTooLow(AssertionError):
    """Raised by :func:`assert_mutation_score`; ``.score`` holds the score, ``str()`` its
    table."""

    def __init__(self, score: MutationScore, min_score: float) -> None:
        super().__init__(f"mutation score below min_score={min_score:g}\n{score}")
        self.score = score
