"""The Athena SQL of every shipped query: `dist/athena/<name>.sql`.

Each file is the query's one definition (`adstream.shipped_queries`) translated for Athena
(`adstream.athena.athena_sql`), headed by what it answers and, when it has parameters, the
name of each `?` in order: the execution parameters to give Athena (StartQueryExecution's
`ExecutionParameters`, the console's parameter boxes), as Trino literals.
"""

from pathlib import Path
from typing import Final

from adstream.athena import athena_sql
from adstream.shipped_queries import SHIPPED_QUERIES

ATHENA_DIR: Final = "athena"


def build_athena_queries(output: Path) -> list[Path]:
    """Write one file per shipped query into `output/athena/`; return their paths."""
    folder = output / ATHENA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, query in SHIPPED_QUERIES.items():
        athena = athena_sql(name)
        header = [f"-- {name}: {query.doc}"]
        if athena.parameters:
            header.append(f"-- parameters, in order: {', '.join(athena.parameters)}")
        path = folder / f"{name}.sql"
        path.write_text("\n".join([*header, f"{athena.sql};", ""]))
        written.append(path)
    return written
