"""The Iceberg catalog, seen by pyiceberg and by Spark alike (SPEC sections 6 and 9).

Both engines must name the catalog `adstream`: the JDBC catalog stores that name in each row,
and a client under another name sees no tables at all. Locally the catalog is a SQLite file
and the warehouse a folder in the data directory. On aws it is the AWS Glue Data Catalog with
the warehouse on S3 (Iceberg's GlueCatalog and S3FileIO in Spark, pyiceberg's glue catalog
and its S3 file IO here), at the endpoint of `aws_endpoint_url` or the emulator when one is
set. A `rest` catalog is configured the same way but is not tested here (docs/enrich.md).
"""

from pathlib import Path
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from sqlalchemy.engine import make_url

from adstream.errors import AdstreamError
from adstream.lakehouse.tables import NAMESPACE, TABLE_PROPERTIES, TABLES
from adstream.services import aws
from adstream.services.aws import EMULATOR_CREDENTIALS
from adstream.settings import CatalogType, Settings

CATALOG_NAME: Final = "adstream"


def lakehouse_dir(settings: Settings) -> Path:
    """Local catalog and warehouse live here (unless configured elsewhere)."""
    return settings.data_dir.resolve() / "lakehouse"


EMULATOR_WAREHOUSE: Final = "s3://adstream-lakehouse/warehouse"
"""The warehouse on the emulator's S3, unless one is configured (`adstream up` makes the bucket)."""


def catalog_uri(settings: Settings) -> str | None:
    """The configured catalog URI; for a sql catalog, the local SQLite file by default."""
    if settings.catalog_uri is not None or settings.iceberg_catalog != "sql":
        return settings.catalog_uri
    return f"sqlite:///{lakehouse_dir(settings) / 'catalog.db'}"


def warehouse(settings: Settings) -> str:
    """The warehouse location as a URL (`file:///...` for a local folder, `s3://...`).

    Raises:
        AdstreamError: a Glue catalog without a configured warehouse off the emulator.
    """
    location = settings.warehouse
    if location is None:
        if settings.iceberg_catalog != "glue":
            return (lakehouse_dir(settings) / "warehouse").as_uri()
        if settings.aws_emulator:
            return EMULATOR_WAREHOUSE
        raise AdstreamError(
            "the Glue catalog needs a warehouse on S3: set warehouse = "
            '"s3://<bucket>/<prefix>/warehouse" (ADSTREAM_WAREHOUSE), the bucket of the '
            "CloudFormation stack (docs/aws.md)"
        )
    if "://" in location:
        return location
    return Path(location).resolve().as_uri()


def warehouse_bucket(settings: Settings) -> str | None:
    """The S3 bucket of the warehouse; None when the warehouse is not on S3."""
    location = warehouse(settings)
    if not location.startswith("s3://"):
        return None
    return location.removeprefix("s3://").split("/", 1)[0]


def _local_sqlite_file(settings: Settings) -> Path | None:
    uri = catalog_uri(settings)
    if settings.catalog_type != "sql" or uri is None:
        return None
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database)


def _prepare_local_folders(settings: Settings) -> None:
    sqlite_file = _local_sqlite_file(settings)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    location = warehouse(settings)
    if location.startswith("file:"):
        Path(location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


def catalog_properties(settings: Settings) -> dict[str, str]:
    """The catalog properties for pyiceberg: uri, warehouse, where AWS is, the extra ones set."""
    properties = {"warehouse": warehouse(settings)}
    uri = catalog_uri(settings)
    if uri is not None:
        properties["uri"] = uri
    if settings.iceberg_catalog == "glue":
        properties |= {"glue.region": settings.aws_region, "s3.region": settings.aws_region}
        if settings.aws_endpoint is not None:
            properties |= {
                "glue.endpoint": settings.aws_endpoint,
                "s3.endpoint": settings.aws_endpoint,
            }
        if settings.aws_emulator:
            key, secret = EMULATOR_CREDENTIALS.values()
            for client in ("glue", "s3"):
                properties |= {
                    f"{client}.access-key-id": key,
                    f"{client}.secret-access-key": secret,
                }
    return properties | settings.catalog_properties


def open_catalog(settings: Settings) -> Catalog:
    """The pyiceberg catalog `adstream` (creates local folders and the SQLite file if missing).

    Raises:
        AdstreamError: the catalog cannot be opened (one clear line).
    """
    _prepare_local_folders(settings)
    if settings.iceberg_catalog == "glue":
        _require_glue(settings)
    return connect(settings.iceberg_catalog, catalog_properties(settings))


def _require_glue(settings: Settings) -> None:
    """Fail at once, in one line, when the Glue Data Catalog does not answer.

    pyiceberg's own Glue client would retry for some 20 s and then raise a traceback. One
    GetDatabase call (a permission every role of deploy/adstream.yaml has) asks first; any
    answer, an error included (no database yet, access denied), counts as reachable.
    """
    try:
        aws.client(settings, "glue").get_database(Name=NAMESPACE)
    except ClientError:
        pass
    except BotoCoreError as error:
        raise aws.unreachable(settings, error) from error


def connect(
    catalog_type: CatalogType, properties: dict[str, str], name: str = CATALOG_NAME
) -> Catalog:
    """The pyiceberg catalog `name` (`adstream`) of this kind with these properties.

    Raises:
        AdstreamError: the catalog cannot be opened (one clear line).
    """
    try:
        if catalog_type == "sql":
            from pyiceberg.catalog.sql import SqlCatalog

            return SqlCatalog(name, **properties)
        if catalog_type == "rest":
            from pyiceberg.catalog.rest import RestCatalog

            return RestCatalog(name, **properties)
        from pyiceberg.catalog.glue import GlueCatalog

        return GlueCatalog(name, **properties)
    except ImportError as error:
        raise AdstreamError(
            f"the {catalog_type} catalog needs an extra package ({error.name}); "
            "install pyiceberg with that extra, e.g. pip install 'pyiceberg[glue]'"
        ) from error
    except Exception as error:
        where = properties.get("uri") or properties.get("warehouse")
        raise AdstreamError(
            f"cannot open the {catalog_type} catalog at {where}: {error}"
        ) from error


def ensure_tables(settings: Settings) -> Catalog:
    """Create the namespace and every table that is missing; return the catalog. Idempotent."""
    return create_tables(open_catalog(settings))


def create_tables(catalog: Catalog) -> Catalog:
    """Create the namespace and every table that is missing in `catalog`; return it.

    A table made by an earlier release gets the columns added since (they come last).
    """
    catalog.create_namespace_if_not_exists(NAMESPACE)
    for table in TABLES:
        created = catalog.create_table_if_not_exists(
            table.identifier,
            schema=table.schema(),
            partition_spec=table.partition_spec(),
            properties={**TABLE_PROPERTIES, "comment": table.doc},
        )
        held = set(created.schema().column_names)
        if any(name not in held for name in table.column_names):
            with created.update_schema() as update:
                update.union_by_name(table.schema())
    return catalog


def load_table(catalog: Catalog, name: str) -> Table:
    """One of the tables by its short name (`impressions`, ...), with a clear error if missing.

    Raises:
        AdstreamError: the table does not exist.
    """
    try:
        return catalog.load_table(f"{NAMESPACE}.{name}")
    except NoSuchTableError as error:
        raise AdstreamError(
            f"table {NAMESPACE}.{name} does not exist; run `adstream enrich` or `adstream run` "
            "first"
        ) from error


def spark_catalog_conf(settings: Settings) -> dict[str, str]:
    """The `spark.sql.catalog.adstream.*` options for the same catalog as `open_catalog`.

    For Glue, credentials are not among them: the Spark JVM takes them from the standard chain
    (with the emulator, its environment: `adstream.services.aws.sdk_environment`).
    """
    conf = _spark_catalog(CATALOG_NAME, warehouse(settings))
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    uri = catalog_uri(settings)
    if settings.iceberg_catalog == "sql":
        if uri is None:
            raise AdstreamError("catalog_uri is required for a sql catalog")
        conf |= _spark_jdbc(CATALOG_NAME, uri)
    else:
        conf[f"{prefix}.type"] = settings.iceberg_catalog
        if uri is not None:
            conf[f"{prefix}.uri"] = uri
    if settings.iceberg_catalog == "glue":
        conf |= {
            f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
            f"{prefix}.client.region": settings.aws_region,
        }
        if settings.aws_endpoint is not None:
            conf |= {
                f"{prefix}.glue.endpoint": settings.aws_endpoint,
                f"{prefix}.s3.endpoint": settings.aws_endpoint,
                f"{prefix}.s3.path-style-access": "true",
            }
    conf |= {f"{prefix}.{key}": value for key, value in settings.catalog_properties.items()}
    return conf


def spark_sql_catalog_conf(name: str, sqlalchemy_uri: str, location: str) -> dict[str, str]:
    """Spark's options for a sql catalog `name` at that URI, as `connect` opens it."""
    return _spark_catalog(name, location) | _spark_jdbc(name, sqlalchemy_uri)


def _spark_catalog(name: str, location: str) -> dict[str, str]:
    prefix = f"spark.sql.catalog.{name}"
    return {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.warehouse": location,
        # Every read sees the latest commit, also one made by another session or process.
        f"{prefix}.cache-enabled": "false",
    }


def _spark_jdbc(name: str, sqlalchemy_uri: str) -> dict[str, str]:
    prefix = f"spark.sql.catalog.{name}"
    conf = {f"{prefix}.type": "jdbc", f"{prefix}.jdbc.schema-version": "V1"}
    return conf | {f"{prefix}.{key}": value for key, value in _jdbc(sqlalchemy_uri).items()}


def _jdbc(sqlalchemy_uri: str) -> dict[str, str]:
    """The Java JDBC catalog's `uri` (and credentials) for pyiceberg's SQLAlchemy URL."""
    url = make_url(sqlalchemy_uri)
    backend = url.get_backend_name()
    if backend == "sqlite":
        # The enrichment commits four tables at once: a writer waits up to a minute for SQLite's
        # lock (a driver property, passed on by Iceberg without its `jdbc.` prefix).
        return {"uri": f"jdbc:sqlite:{url.database}", "jdbc.busy_timeout": "60000"}
    address = url.host or "localhost"
    if url.port is not None:
        address += f":{url.port}"
    options = {"uri": f"jdbc:{backend}://{address}/{url.database or ''}"}
    if url.username is not None:
        options["jdbc.user"] = url.username
    if url.password is not None:
        options["jdbc.password"] = str(url.password)
    return options


def row_counts(settings: Settings) -> dict[str, int]:
    """Rows in each table now (from the current snapshot's summary; 0 for an empty table)."""
    catalog = open_catalog(settings)
    counts = {}
    for table in TABLES:
        snapshot = load_table(catalog, table.name).current_snapshot()
        summary = snapshot.summary if snapshot is not None else None
        total = summary.additional_properties.get("total-records") if summary else None
        counts[table.name] = int(total) if total is not None else 0
    return counts
