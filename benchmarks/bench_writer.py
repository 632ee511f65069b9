"""What knowing "which samples were new" costs the writer; prints one JSON object.

The detectors must see each sample once, so the writer has to know which rows of a batch were
actually inserted. Three ways, on the same 5 000-row batches into a fresh table:

* ``copy``: binary COPY straight into ``telemetry`` — all rows are new when it succeeds (the
  writer's fast path; a conflict aborts it and the batch is redone by merge);
* ``merge_plain``: COPY into a staging table, ``INSERT … ON CONFLICT DO NOTHING`` (the row
  count only: it cannot say *which* rows were new);
* ``merge_returning``: the same plus ``RETURNING`` joined back to the staging rows (the
  writer's merge path: exactly the new samples).

Run: ``.venv/bin/python benchmarks/bench_writer.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ingest import Services, _partitions, _records
from ingest.pgcopy import TELEMETRY_COLUMNS, stage_copy, telemetry_copy
from ingest.wire import MEASUREMENTS, SampleBatch
from ingest.writer import _COPY_STAGE, _COPY_TELEMETRY, _CREATE_STAGE, _MERGE

_PLAIN = sql.SQL(
    "INSERT INTO telemetry ({}) SELECT ts, seq, {}, flags, (%(devices)s::text[])[dev + 1] "
    "FROM pp_telemetry_stage ORDER BY ts ON CONFLICT DO NOTHING"
).format(
    sql.SQL(", ").join(map(sql.Identifier, TELEMETRY_COLUMNS)),
    sql.SQL(", ").join(sql.SQL(f"NULLIF({m}, 'NaN')") for m in MEASUREMENTS),
)


async def _one(conn: psycopg.AsyncConnection[Any], batch: SampleBatch, how: str) -> int:
    async with conn.transaction():
        if how == "copy":
            async with conn.cursor().copy(_COPY_TELEMETRY) as cp:
                await cp.write(telemetry_copy(batch))
            return len(batch)
        await conn.execute(_CREATE_STAGE)
        async with conn.cursor().copy(_COPY_STAGE) as cp:
            await cp.write(stage_copy(batch))
        if how == "merge_plain":
            cur = await conn.execute(_PLAIN, {"devices": list(batch.devices)})
            return cur.rowcount
        cur = await conn.execute(_MERGE, {"devices": list(batch.devices)})
        row = await cur.fetchone()
        return len(row[0]) if row else 0


async def measure(db_url: str, batches: list[SampleBatch], how: str) -> dict[str, float]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await _partitions(conn, batches[0])
        n = sum(len(b) for b in batches)
        started = time.perf_counter()
        new = sum([await _one(conn, b, how) for b in batches])
        fresh = n / (time.perf_counter() - started)
        out = {"fresh_rows_per_s": fresh}
        if how != "copy":  # the same batches again: every row is a duplicate (a replay)
            started = time.perf_counter()
            again = sum([await _one(conn, b, how) for b in batches])
            out["replay_rows_per_s"] = n / (time.perf_counter() - started)
            assert again == 0
        assert new == n
    return out


async def run(rounds: int) -> dict[str, Any]:
    rec = _records(500, 400, int(time.time() * 1000) - 3_600_000)
    names = tuple(f"w{i:05d}" for i in range(500))
    batches = [SampleBatch.from_records(names, rec[i : i + 5000]) for i in range(0, len(rec), 5000)]
    results: dict[str, list[dict[str, float]]] = {
        "copy": [],
        "merge_plain": [],
        "merge_returning": [],
    }
    with Services() as svc:
        for _ in range(rounds):
            for how in results:
                results[how].append(await measure(svc.fresh_db(), batches, how))

    def med(how: str, key: str) -> float:
        return round(float(statistics.median(r[key] for r in results[how])), 1)

    ret, plain = med("merge_returning", "fresh_rows_per_s"), med("merge_plain", "fresh_rows_per_s")
    return {
        "benchmark": "writer_paths",
        "rows": len(rec),
        "batch_rows": 5000,
        "rounds": rounds,
        "copy_rows_per_s": med("copy", "fresh_rows_per_s"),
        "merge_plain_rows_per_s": plain,
        "merge_returning_rows_per_s": ret,
        "merge_plain_replay_rows_per_s": med("merge_plain", "replay_rows_per_s"),
        "merge_returning_replay_rows_per_s": med("merge_returning", "replay_rows_per_s"),
        "ratio_returning_vs_plain": round(ret / plain, 3),
        "ratio_copy_vs_merge_returning": round(med("copy", "fresh_rows_per_s") / ret, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(orjson.dumps(asyncio.run(run(args.rounds)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
