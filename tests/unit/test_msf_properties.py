"""The join's settings from Managed Flink's runtime properties, and each way they can be wrong."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from adstream.errors import AdstreamError
from adstream.join.msf import runtime_settings


def properties(tmp_path: Path, groups: object) -> Path:
    path = tmp_path / "application_properties.json"
    path.write_text(json.dumps(groups))
    return path


def test_the_adstream_group_gives_the_settings_by_their_names(tmp_path: Path) -> None:
    path = properties(
        tmp_path,
        [
            {
                "PropertyGroupId": "kinesis.analytics.flink.run.options",
                "PropertyMap": {"python": "x"},
            },
            {
                "PropertyGroupId": "adstream",
                "PropertyMap": {
                    "platform": "aws",
                    "aws_region": "eu-west-1",
                    "stream_prefix": "prod-",
                    "attribution_window": "PT15M",
                    "stream_shards": "4",
                },
            },
        ],
    )
    settings = runtime_settings(path)
    assert (
        settings.platform,
        settings.aws_region,
        settings.stream_prefix,
        settings.attribution_window,
        settings.stream_shards,
    ) == ("aws", "eu-west-1", "prod-", timedelta(minutes=15), 4)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([], r"have no property group 'adstream' \(groups: none\)"),
        ([{"PropertyGroupId": "other", "PropertyMap": {}}], r"\(groups: other\)"),
        ({"adstream": {}}, "is not a list of PropertyGroupId/PropertyMap objects"),
        (
            [{"PropertyGroupId": "adstream", "PropertyMap": {"no_such_setting": "1"}}],
            "no_such_setting",
        ),
        ([{"PropertyGroupId": "adstream", "PropertyMap": {"stream_shards": "0"}}], "stream_shards"),
    ],
)
def test_wrong_properties_are_one_clear_line(tmp_path: Path, groups: object, message: str) -> None:
    with pytest.raises(AdstreamError, match=message) as raised:
        runtime_settings(properties(tmp_path, groups))
    assert "\n" not in str(raised.value)


def test_outside_managed_flink_the_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        AdstreamError, match=r"no runtime properties at .*: is this a Managed Flink"
    ):
        runtime_settings(tmp_path / "absent.json")


def test_a_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "application_properties.json"
    path.write_text("{not json")
    with pytest.raises(AdstreamError, match="cannot read the runtime properties at"):
        runtime_settings(path)
