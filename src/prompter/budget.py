"""The run's agent spend, against `max_cost_usd`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CostBudget:
    """What the agents of this run have cost so far; `limit_usd` None means no limit."""

    limit_usd: float | None = None
    spent_usd: float = 0.0

    def add(self, cost_usd: float | None) -> None:
        if cost_usd:
            self.spent_usd += cost_usd

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    @property
    def remaining_usd(self) -> float | None:
        return None if self.limit_usd is None else max(0.0, self.limit_usd - self.spent_usd)

    @property
    def reason(self) -> str:
        return f"cost budget of ${self.limit_usd or 0:.2f} reached"
