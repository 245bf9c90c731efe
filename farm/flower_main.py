"""``python -m farm.flower_main ARGS``: Celery's ``flower`` command with Prometheus labels bounded.

Each sample's task carries a title (Celery ``shadow``: ``farm.sample[RUN provider/snippet#rep]``)
so Flower's task list and the queue inspection can tell samples apart. Flower labels its
Prometheus series by that name, which would make one label set per sample: /metrics would grow
without bound. Here the metrics see the task's type only (the part before ``[``); Flower's task
list keeps the full title.
"""

from __future__ import annotations

import sys

from celery.bin.celery import main as celery_main

try:
    import flower.events
except ImportError:
    sys.exit("farm: Flower is not installed: pip install 'sandbox-farm[flower]'")


def metric_task_name(name: str | None) -> str:
    """The bounded label for a task title: ``farm.sample[...]`` → ``farm.sample``."""
    return (name or "").split("[", 1)[0].strip()


class BoundedPrometheusMetrics(flower.events.PrometheusMetrics):
    def observe_task(self, worker, event, task):  # type: ignore[no-untyped-def]
        name = metric_task_name(event.get("name") or task.name)
        super().observe_task(worker, {**event, "name": name}, _NamedAs(task, name))


class _NamedAs:
    """``task`` seen with another name (Flower's metrics read ``task.name`` when the event has none)."""

    def __init__(self, task: object, name: str) -> None:
        self._task = task
        self.name = name

    def __getattr__(self, attr: str) -> object:
        return getattr(self._task, attr)


def main() -> None:
    # flower.events.get_prometheus_metrics() builds the class named here on first use
    flower.events.PrometheusMetrics = BoundedPrometheusMetrics  # type: ignore[misc]
    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(celery_main())


if __name__ == "__main__":
    main()
