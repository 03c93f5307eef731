"""On aws the tables are Iceberg on S3 in the Glue Data Catalog (SPEC section 9)."""

import pytest

from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import (
    catalog_properties,
    spark_catalog_conf,
    warehouse,
    warehouse_bucket,
)
from adstream.settings import load_settings

CATALOG = "spark.sql.catalog.adstream"


def test_on_aws_the_catalog_is_glue_and_local_stays_sql() -> None:
    assert load_settings(platform="aws", aws_emulator=True).iceberg_catalog == "glue"
    assert load_settings().iceberg_catalog == "sql"
    assert load_settings(platform="aws", catalog_type="rest").iceberg_catalog == "rest"


def test_the_emulator_gets_its_endpoint_dummy_keys_and_its_own_bucket() -> None:
    settings = load_settings(platform="aws", aws_emulator=True, aws_emulator_port=4600)
    endpoint = "http://127.0.0.1:4600"
    assert catalog_properties(settings) == {
        "warehouse": "s3://adstream-lakehouse/warehouse",
        "glue.region": "us-east-1",
        "s3.region": "us-east-1",
        "glue.endpoint": endpoint,
        "s3.endpoint": endpoint,
        "glue.access-key-id": "adstream-emulator",
        "glue.secret-access-key": "adstream-emulator",
        "s3.access-key-id": "adstream-emulator",
        "s3.secret-access-key": "adstream-emulator",
    }
    assert spark_catalog_conf(settings) == {
        CATALOG: "org.apache.iceberg.spark.SparkCatalog",
        f"{CATALOG}.warehouse": "s3://adstream-lakehouse/warehouse",
        f"{CATALOG}.cache-enabled": "false",
        f"{CATALOG}.type": "glue",
        f"{CATALOG}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{CATALOG}.client.region": "us-east-1",
        f"{CATALOG}.glue.endpoint": endpoint,
        f"{CATALOG}.s3.endpoint": endpoint,
        f"{CATALOG}.s3.path-style-access": "true",
    }
    assert warehouse_bucket(settings) == "adstream-lakehouse"


def test_on_aws_itself_no_endpoint_and_no_key_is_configured() -> None:
    settings = load_settings(
        platform="aws", aws_region="eu-west-1", warehouse="s3://my-bucket/ads/warehouse"
    )
    assert catalog_properties(settings) == {
        "warehouse": "s3://my-bucket/ads/warehouse",
        "glue.region": "eu-west-1",
        "s3.region": "eu-west-1",
    }
    conf = spark_catalog_conf(settings)
    assert not any("endpoint" in key or "key" in key for key in conf)
    assert conf[f"{CATALOG}.client.region"] == "eu-west-1"
    assert warehouse_bucket(settings) == "my-bucket"


def test_aws_without_a_warehouse_says_which_setting_to_give() -> None:
    with pytest.raises(AdstreamError, match=r'set warehouse = "s3://<bucket>/<prefix>/warehouse"'):
        warehouse(load_settings(platform="aws"))


def test_a_local_warehouse_has_no_bucket() -> None:
    assert warehouse_bucket(load_settings()) is None
