"""The early and late token windows of the ICL score, as fractions of the context and as token
indices. Kept free of torch: the plan-time config checks use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

EARLY, LATE = (1 / 16, 1 / 8), (3 / 4, 1.0)  # the ICL windows' default fractions of the context


@dataclass(frozen=True)
class IclWindows:
    """The early and late token windows of the ICL score, ``[start, stop)`` token indices (token 0
    is BOS; token ``t`` is predicted at loss column ``t - 1``)."""

    early: tuple[int, int]
    late: tuple[int, int]

    @classmethod
    def scaled(cls, n_ctx: int, early: Sequence[float] = EARLY, late: Sequence[float] = LATE) -> IclWindows:
        """Windows given as fractions ``[start, stop)`` of the context (tokens ``0 … n_ctx - 1``):
        by default tokens ``[n/16, n/8)`` and ``[3n/4, n)`` (8-15 and 96-127 of 128)."""
        windows = cls.unchecked(n_ctx, early, late)
        windows.check(n_ctx)
        return windows

    @classmethod
    def unchecked(cls, n_ctx: int, early: Sequence[float], late: Sequence[float]) -> IclWindows:
        """The token windows the fractions give, whether or not they are usable (see :meth:`check`)."""
        to_token = lambda f: int(round(f * n_ctx))  # noqa: E731
        return cls((to_token(early[0]), to_token(early[1])), (to_token(late[0]), to_token(late[1])))

    @classmethod
    def from_dict(cls, d: dict) -> IclWindows:
        """The inverse of :meth:`as_dict` (a record's ``icl_windows``)."""
        return cls(tuple(d["early"]), tuple(d["late"]))

    def check(self, n_ctx: int) -> None:
        (e0, e1), (l0, l1) = self.early, self.late
        if not 1 <= e0 < e1 <= l0 < l1 <= n_ctx:
            raise ValueError(
                f"ICL windows early {self.early}, late {self.late}: need 1 <= early start < early "
                f"stop <= late start < late stop <= n_ctx ({n_ctx})"
            )

    @property
    def label(self) -> str:
        (e0, e1), (l0, l1) = self.early, self.late
        return f"tokens {l0}-{l1 - 1} minus tokens {e0}-{e1 - 1}"

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}
