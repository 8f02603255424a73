"""The run's agent spend, against `max_cost_usd`; and its forecast, against the same budget
before the run starts."""

from __future__ import annotations

from dataclasses import dataclass

from .records import RunForecast
from .words import count


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


def over_budget(forecast: RunForecast) -> str | None:
    """What to say before a run whose forecast's expected cost alone exceeds its budget; None
    when it does not (or there is no budget, or no history to forecast from)."""
    cost = forecast.cost_usd
    if not forecast.over_budget or cost is None or forecast.budget_usd is None:
        return None
    unknown = f", {count(forecast.unknown, 'more task')} unknown" if forecast.unknown else ""
    return (
        f"the forecast's expected cost ${cost.expected:.2f} (high ${cost.high:.2f}; "
        f"{count(len(forecast.tasks), 'task')} with history{unknown}) exceeds "
        f"max_cost_usd ${forecast.budget_usd:.2f}"
    )
