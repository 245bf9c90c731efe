"""A benchmark plan, expanded lazily: item i of a provider's sequence is computed, never stored.

Each provider walks rounds: first ``warmup`` warm-up rounds, then ``repetitions`` measured rounds.
Within a round every repeatable snippet appears once, in an order shuffled by (seed, provider,
round), so no snippet is always measured first or last. Snippets declared ``repeatable = false``
appear only in round 0 of the measured rounds. Providers run side by side on their own queues, so
every provider is measured across the whole run, never only at one time of day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence


@dataclass(frozen=True)
class PlanItem:
    provider: str
    snippet: str
    rep: int
    warmup: bool


@dataclass(frozen=True)
class Plan:
    providers: tuple[str, ...]
    snippets: tuple[str, ...]
    once: frozenset[str]  # snippets that are not repeatable
    repetitions: int
    warmup: int
    seed: int

    @classmethod
    def build(cls, providers: Sequence[str], snippets: Sequence[str], once: Sequence[str],
              repetitions: int, warmup: int, seed: int) -> "Plan":
        return cls(tuple(providers), tuple(snippets), frozenset(once), repetitions, warmup, seed)

    def _round_order(self, provider: str, round_no: int) -> list[str]:
        order = list(self.snippets)
        random.Random(f"{self.seed}:{provider}:{round_no}").shuffle(order)
        if round_no != self.warmup:  # non-repeatable snippets run once: in the first measured round
            order = [s for s in order if s not in self.once]
        return order

    def per_provider(self) -> int:
        """How many items each provider runs (warm-ups included)."""
        repeatable = len(self.snippets) - len(self.once)
        return repeatable * (self.warmup + self.repetitions) + len(self.once)

    @property
    def total(self) -> int:
        return self.per_provider() * len(self.providers)

    @property
    def measured(self) -> int:
        return (len(self.snippets) - len(self.once)) * self.repetitions * len(self.providers) + \
            len(self.once) * len(self.providers)

    def item(self, provider: str, index: int) -> PlanItem | None:
        """The provider's index-th item, or None past the end. O(snippets) time, O(1) memory."""
        if index < 0 or index >= self.per_provider():
            return None
        repeatable = len(self.snippets) - len(self.once)
        warm_items = repeatable * self.warmup
        if index < warm_items:
            round_no, pos = divmod(index, repeatable)
            return PlanItem(provider, self._round_order(provider, round_no)[pos], round_no, True)
        index -= warm_items
        first_round = len(self.snippets)  # the first measured round holds every snippet
        if index < first_round:
            return PlanItem(provider, self._round_order(provider, self.warmup)[index], 0, False)
        index -= first_round
        rep, pos = divmod(index, repeatable)
        rep += 1
        return PlanItem(provider, self._round_order(provider, self.warmup + rep)[pos], rep, False)

    def items(self, provider: str) -> Iterator[PlanItem]:
        for i in range(self.per_provider()):
            item = self.item(provider, i)
            assert item is not None
            yield item
