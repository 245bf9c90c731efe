"""Reading what was measured: the run's sample stream, and the sketches workers flushed."""

from __future__ import annotations

from typing import Any, Iterator

from farm.samples import Batch, decode_sample, encode_sample
from farm.store.base import StoreBase


class Stream(StoreBase):
    def _xrange(self, key: str, start: bytes, count: int) -> list[list[Any]]:
        """XRANGE read straight off a connection: entries as [id, [field, value, ...]] without
        redis-py's per-entry dict building, which costs more than the parsing itself."""
        pool = self.raw.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("XRANGE", key, start, "+", "COUNT", count)
            return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def iter_entries(self, run_id: str, batch: int = 5000) -> Iterator[list[list[Any]]]:
        """The run's stream in batches of raw entries ([id, [field, value, ...]]), oldest first."""
        last = b"-"
        key = self.key(run_id, "samples")
        while True:
            entries = self._xrange(key, last, batch)
            if last != b"-" and entries and entries[0][0] == last:
                entries = entries[1:]
            if not entries:
                return
            yield entries
            last = entries[-1][0]

    def groups_after(self, run_id: str, after: bytes = b"-", count: int = 2000) -> tuple[list[str], bytes]:
        """The group field (provider, snippet, warmup, outcome, error_class) of up to ``count``
        entries committed after the entry id ``after`` (b"-": from the start), and the last id
        read: live progress tallies a run without decoding its samples."""
        entries = self._xrange(self.key(run_id, "samples"), after, count + 1)
        if after != b"-" and entries and entries[0][0] == after:
            entries = entries[1:]
        groups = []
        for _id, flat in entries:
            for name, value in zip(flat[::2], flat[1::2]):
                if name == b"g":
                    groups.append(value.decode())
                    break
        return groups, (entries[-1][0] if entries else after)

    def iter_samples(self, run_id: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every sample as a dict, oldest first, read in batches."""
        for entries in self.iter_entries(run_id, batch):
            for _id, flat in entries:
                yield decode_sample(dict(zip(flat[::2], flat[1::2])))

    def iter_batches(self, run_id: str, batch: int = 20000) -> Iterator[Batch]:
        """The run's samples as column batches: the aggregator's fast path."""
        for entries in self.iter_entries(run_id, batch):
            yield Batch.from_entries(entries)

    def samples(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.iter_samples(run_id))

    def sample_bytes(self, run_id: str) -> int:
        """Memory the run's stream takes in Redis."""
        return int(self.r.memory_usage(self.key(run_id, "samples")) or 0)

    def append_unchecked(self, run_id: str, sample: dict[str, Any], client: Any = None) -> None:
        """Append a sample to the stream bypassing the ledger (no exactly-once, no counters): only
        for synthetic loads in bench/. ``client`` may be a pipeline."""
        (client or self.r).xadd(self.key(run_id, "samples"), dict(zip(*[iter(encode_sample(sample))] * 2)))

    def delete_samples(self, run_id: str) -> None:
        self.r.delete(self.key(run_id, "samples"))

    # --- sketches (farm/sketch.py) ---------------------------------------------------------------
    def write_sketches(self, by_run: dict[str, dict[str, str]]) -> None:
        """Overwrite sketch fields, ``{run_id: {field: json}}``, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for run_id, mapping in by_run.items():
            pipe.hset(self.key(run_id, "sketches"), mapping=mapping)
        pipe.execute()

    def iter_sketches(self, run_id: str) -> Iterator[tuple[str, str]]:
        """(field, json) of every sketch a writer flushed for the run, streamed with HSCAN."""
        return self.r.hscan_iter(self.key(run_id, "sketches"), count=200)
