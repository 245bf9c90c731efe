"""A benchmark plan, expanded lazily: item i of a provider's sequence is computed, never stored.

Each provider walks rounds: first ``warmup`` warm-up rounds, then ``repetitions`` measured rounds.
Within a round every (repeatable snippet, scenario) cell appears once, in an order shuffled by
(seed, provider, round), so no snippet or scenario is always measured first or last. Snippets
declared ``repeatable = false`` appear only in round 0 of the measured rounds (once per scenario).
With the single default scenario the order is exactly the one plans had before scenarios existed:
a run created then expands to the same items now. Providers run side by side on their own queues, so
every provider is measured across the whole run, never only at one time of day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

from farm.scenarios import DEFAULT


@dataclass(frozen=True)
class PlanItem:
    provider: str
    snippet: str
    rep: int
    warmup: bool
    scenario: str = DEFAULT


@dataclass(frozen=True)
class Plan:
    providers: tuple[str, ...]
    snippets: tuple[str, ...]
    once: frozenset[str]  # snippets that are not repeatable
    repetitions: int
    warmup: int
    seed: int
    scenarios: tuple[str, ...] = (DEFAULT,)

    @classmethod
    def build(cls, providers: Sequence[str], snippets: Sequence[str], once: Sequence[str],
              repetitions: int, warmup: int, seed: int, scenarios: Sequence[str] = (DEFAULT,)) -> "Plan":
        return cls(tuple(providers), tuple(snippets), frozenset(once), repetitions, warmup, seed,
                   tuple(scenarios))

    def _round_order(self, provider: str, round_no: int) -> list[tuple[str, str]]:
        # shuffle permutes by length only: one scenario gives the pre-scenario snippet order
        order = [(snippet, scenario) for snippet in self.snippets for scenario in self.scenarios]
        random.Random(f"{self.seed}:{provider}:{round_no}").shuffle(order)
        if round_no != self.warmup:  # non-repeatable snippets run once: in the first measured round
            order = [cell for cell in order if cell[0] not in self.once]
        return order

    @property
    def _repeatable(self) -> int:
        """Cells in every round: repeatable snippets × scenarios."""
        return (len(self.snippets) - len(self.once)) * len(self.scenarios)

    def per_provider(self) -> int:
        """How many items each provider runs (warm-ups included)."""
        return self._repeatable * (self.warmup + self.repetitions) + len(self.once) * len(self.scenarios)

    @property
    def total(self) -> int:
        return self.per_provider() * len(self.providers)

    @property
    def measured(self) -> int:
        return (self._repeatable * self.repetitions + len(self.once) * len(self.scenarios)) * len(self.providers)

    def item(self, provider: str, index: int) -> PlanItem | None:
        """The provider's index-th item, or None past the end. O(snippets) time, O(1) memory."""
        if index < 0 or index >= self.per_provider():
            return None
        repeatable = self._repeatable
        warm_items = repeatable * self.warmup
        if index < warm_items:
            round_no, pos = divmod(index, repeatable)
            snippet, scenario = self._round_order(provider, round_no)[pos]
            return PlanItem(provider, snippet, round_no, True, scenario)
        index -= warm_items
        first_round = len(self.snippets) * len(self.scenarios)  # the first measured round holds every cell
        if index < first_round:
            snippet, scenario = self._round_order(provider, self.warmup)[index]
            return PlanItem(provider, snippet, 0, False, scenario)
        index -= first_round
        rep, pos = divmod(index, repeatable)
        rep += 1
        snippet, scenario = self._round_order(provider, self.warmup + rep)[pos]
        return PlanItem(provider, snippet, rep, False, scenario)

    def items(self, provider: str) -> Iterator[PlanItem]:
        for i in range(self.per_provider()):
            item = self.item(provider, i)
            assert item is not None
            yield item
