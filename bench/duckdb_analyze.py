#!/usr/bin/env python3
"""The derived tables of `analyze`, computed by DuckDB over the same Parquet files.

`pipeline bench analyze --compare duckdb` writes a JSON spec (the tables to register, the
views, and each derived table's SQL as DataFusion runs it) and calls this script in the same
sitting; it prints one JSON object: seconds and rows per table. Each derived table is written
to Parquet and read back by the tables after it, as `analyze` does, and the time of a table is
that of the same steps `analyze` times: the query written to a temporary file and renamed
(DuckDB's COPY does both), flushed to disk (file and folder: `analyze` does, DuckDB's COPY does
not, so this script does) and registered for the tables after it (the CREATE VIEW, which reads
the new file's schema as DataFusion's registration does).

The SQL files are DataFusion's; where DuckDB differs it is adapted here, and nowhere else:
`SMALLINT UNSIGNED` is USMALLINT, the ordered aggregate `FIRST_VALUE(x ORDER BY ...)` is
`first(x ORDER BY ...)`, and `tokens.position` is read as BIGINT (DuckDB keeps UINTEGER
arithmetic unsigned, so `position - 8` would overflow where DataFusion widens to a signed type).

Needs `pip install duckdb` (run with duckdb 2.0.1). Not a dependency of the Rust build.
"""

import json
import os
import re
import sys
import time

import duckdb


def dialect(sql: str) -> str:
    sql = re.sub(r"SMALLINT\s+UNSIGNED", "USMALLINT", sql, flags=re.IGNORECASE)
    sql = re.sub(r"\bFIRST_VALUE\s*\(", "first(", sql, flags=re.IGNORECASE)
    return sql


def sync(path: str) -> None:
    """Flushes a written file and the folder that names it to disk, as `analyze` does."""
    for target, flags in ((path, os.O_RDONLY), (os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    con.execute(f"SET memory_limit = '{int(spec['memory_mib'])}MB'")
    con.execute("SET preserve_insertion_order = false")
    for name, table in spec["tables"].items():
        path = table["path"]
        if table["partitioned"]:
            source = f"read_parquet('{path}/**/*.parquet', hive_partitioning = true, " \
                     "hive_types = {'model': VARCHAR, 'step': UINTEGER, 'layer': USMALLINT})"
        else:
            source = f"read_parquet('{path}')"
        columns = "* REPLACE (CAST(position AS BIGINT) AS position)" if name == "tokens" else "*"
        con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM {source}")
    for view in spec["views"]:
        con.execute(dialect(view))
    out = {}
    for table in spec["derived"]:
        name, sql = table["name"], dialect(table["sql"])
        path = f"{spec['out_dir']}/{name}.parquet"
        started = time.perf_counter()
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        sync(path)
        if name in spec["tables"]:
            con.execute(f"DROP VIEW {name}")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        seconds = time.perf_counter() - started
        rows = con.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
        out[name] = {"seconds": seconds, "rows": rows}
    print(json.dumps({"duckdb": duckdb.__version__, "tables": out}))


if __name__ == "__main__":
    main()
