"""The one Celery configuration every farm process loads (scheduler, workers, beat, Flower).

Delivery policy, and why:
- ``task_acks_late``: a message is acknowledged only after its sample is committed, so a worker
  that dies mid-sample never loses it; Redis re-delivers it after ``visibility_timeout``.
- Redelivery can also happen while the first execution still runs (a sample longer than the
  visibility timeout). That is harmless: the sample is claimed with a lease (SET NX) and committed
  by one Lua script that refuses a second sample for the same (run, provider, snippet, rep).
- A dead worker is not waited for: its lease expires within ``LEASE_MS`` and the reconciler
  (farm/reconcile.py) re-enqueues the member at once, without shrinking the visibility timeout.
- ``worker_disable_prefetch``: a worker fetches a message only when a process is free, so nothing
  sits reserved behind a long sample or stranded in a dead worker's buffer.
- ``task_reject_on_worker_lost``: a child killed by the hard time limit or the OOM killer puts the
  message back instead of acking it as failed.
- ``broker_channel_error_retry``: Redis full (maxmemory, noeviction) refuses the write kombu makes
  when it takes a message (a ResponseError, a "channel" error): the consumer restarts and retries
  instead of the worker's main process exiting with "Unrecoverable error" (farm/worker_consumer.py
  spaces the restarts out). The message it had popped is re-sent by the reconciler (a lost
  message, farm/reconcile.py).
The visibility timeout must agree across every process, so it is set here, in all three places.
"""

from __future__ import annotations

import os

from celery import Celery

SAMPLE_TASK = "farm.sample"
# One value for every process (shortest wins): FARM_VISIBILITY_TIMEOUT_S exists for tests that
# provoke redelivery and for deployments with very long samples; set it everywhere or nowhere.
VISIBILITY_TIMEOUT_S = 3600


def visibility_timeout() -> int:
    return int(os.environ.get("FARM_VISIBILITY_TIMEOUT_S", VISIBILITY_TIMEOUT_S))
LEASE_MS = 15_000


def queue_name(provider: str) -> str:
    """Each provider has its own queue, so a worker consumes only the providers it can serve."""
    return f"farm.{provider}"


def broker_url(redis_url: str) -> str:
    """kombu spells unix sockets ``redis+socket://``; redis-py spells them ``unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://"):]
    return redis_url


def make_app(redis_url: str) -> Celery:
    app = Celery("farm", broker=broker_url(redis_url), set_as_current=True)
    transport: dict[str, int] = {"visibility_timeout": visibility_timeout()}
    if transport["visibility_timeout"] < 300:  # kombu scans for expired messages every ~100 s by default
        transport.update(unacked_restore_interval=max(1, transport["visibility_timeout"] // 2),
                         unacked_restore_throttle=1)
    app.conf.update(
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        visibility_timeout=transport["visibility_timeout"],
        broker_connection_retry_on_startup=True,
        broker_channel_error_retry=True,
        worker_consumer="farm.worker_consumer:Consumer",
        task_ignore_result=True,          # samples go to the farm's own keys, not Celery results
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_disable_prefetch=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        # No task events unless asked: the worker's main process publishes each one, and per no-op
        # sample they cost about a fifth of its time (issue 18). Flower turns them on in every
        # worker it sees (its enable_events timer); `farm worker --events` sends them from the start.
        task_send_sent_event=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        task_default_queue="farm.default",
        broker_connection_max_retries=None,
        timezone="UTC",
    )
    return app
