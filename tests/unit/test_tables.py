"""The Iceberg tables: created as SPEC section 6 says, upgraded in place when columns are added."""

from pathlib import Path

import pyarrow as pa
from pyiceberg.schema import Schema

from adstream.lakehouse.catalog import ensure_tables, load_table
from adstream.lakehouse.tables import IMPRESSIONS, IMPRESSIONS_TABLE, TABLES
from adstream.settings import load_settings


def test_a_table_of_an_earlier_release_gets_the_new_columns_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path)
    catalog = ensure_tables(settings)
    # The impressions table as the first release made it: without source_sequence_number.
    catalog.drop_table(IMPRESSIONS_TABLE.identifier)
    old_fields = [
        f for f in IMPRESSIONS_TABLE.schema().fields if f.name != "source_sequence_number"
    ]
    old = catalog.create_table(
        IMPRESSIONS_TABLE.identifier,
        schema=Schema(*old_fields),
        partition_spec=IMPRESSIONS_TABLE.partition_spec(),
    )
    row = {field.name: [None] for field in old_fields} | {"impression_id": ["imp-1"]}
    old.append(pa.Table.from_pydict(row, schema=old.schema().as_arrow()))

    ensure_tables(settings)

    table = load_table(catalog, IMPRESSIONS)
    assert table.schema().column_names == list(IMPRESSIONS_TABLE.column_names)
    rows = table.scan().to_arrow().to_pylist()
    assert [(r["impression_id"], r["source_sequence_number"]) for r in rows] == [("imp-1", None)]
    for definition in TABLES:  # a second call changes nothing
        before = load_table(catalog, definition.name).schema()
        ensure_tables(settings)
        assert load_table(catalog, definition.name).schema() == before
