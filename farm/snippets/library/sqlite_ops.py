# /// farm
# name = "sqlite_ops"
# description = "SQLite on disk: insert 20,000 rows in one transaction, index, aggregate, update, delete"
# packages = []
# repeatable = true
# ///
import os
import sqlite3
import time

ROWS = 20_000
path = "farm_bench.sqlite3"
if os.path.exists(path):
    os.remove(path)
rows = [(i, f"user{i % 100:02d}", (i * 37) % 1000) for i in range(ROWS)]
expected_sum = sum(r[2] for r in rows)
phases = {}

conn = sqlite3.connect(path)
try:
    start = time.perf_counter()
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, user TEXT NOT NULL, score INTEGER NOT NULL)")
    with conn:
        conn.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
    phases["insert"] = (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    with conn:
        conn.execute("CREATE INDEX events_user ON events (user)")
    phases["index"] = (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    count, total = conn.execute("SELECT COUNT(*), SUM(score) FROM events").fetchone()
    groups = conn.execute("SELECT user, COUNT(*) FROM events GROUP BY user").fetchall()
    one_user = conn.execute("SELECT COUNT(*) FROM events WHERE user = ?", ("user07",)).fetchone()[0]
    phases["query"] = (time.perf_counter() - start) * 1000
    assert count == ROWS and total == expected_sum, (count, total)
    assert len(groups) == 100 and all(n == ROWS // 100 for _, n in groups)
    assert one_user == ROWS // 100

    start = time.perf_counter()
    with conn:
        updated = conn.execute("UPDATE events SET score = score + 1 WHERE id % 10 = 0").rowcount
        deleted = conn.execute("DELETE FROM events WHERE id % 4 = 1").rowcount
    phases["update"] = (time.perf_counter() - start) * 1000
    remaining = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert updated == ROWS // 10 and deleted == ROWS // 4 and remaining == ROWS - deleted
finally:
    conn.close()
    os.remove(path)

print(f"sqlite {sqlite3.sqlite_version}: {count} rows inserted, score sum {total}, "
      f"{len(groups)} users, {updated} updated, {deleted} deleted, {remaining} remaining")
for name, ms in phases.items():
    print(f"FARM_TIMING {name} {ms:.3f}")
