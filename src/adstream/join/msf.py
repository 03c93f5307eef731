"""The join's settings on Amazon Managed Service for Apache Flink: its runtime properties.

MSF gives an application the property groups of its configuration (deploy/adstream.yaml) as a
JSON file, a list of `{"PropertyGroupId": ..., "PropertyMap": {...}}`. adstream's group holds
Settings fields by their names, validated as every other source of settings is, so a property
MSF passes means what the same `ADSTREAM_*` variable or flag means.
"""

import json
from pathlib import Path
from typing import Final

from adstream.errors import AdstreamError
from adstream.settings import Settings, load_settings

RUNTIME_PROPERTIES: Final = Path("/etc/flink/application_properties.json")
"""Where MSF writes the application's property groups."""
SETTINGS_GROUP: Final = "adstream"


def runtime_settings(path: Path = RUNTIME_PROPERTIES) -> Settings:
    """The settings in the `adstream` property group of the runtime properties at `path`.

    Raises:
        AdstreamError: the file is missing or not MSF's format, the group is missing, or a
            property is not a valid setting (one clear line).
    """
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise AdstreamError(
            f"no runtime properties at {path}: is this a Managed Flink application?"
        ) from error
    except (OSError, ValueError) as error:
        raise AdstreamError(f"cannot read the runtime properties at {path}: {error}") from error
    try:
        by_id = {group["PropertyGroupId"]: group["PropertyMap"] for group in groups}
    except (TypeError, KeyError) as error:
        raise AdstreamError(
            f"{path} is not a list of PropertyGroupId/PropertyMap objects"
        ) from error
    if SETTINGS_GROUP not in by_id:
        raise AdstreamError(
            f"the runtime properties at {path} have no property group {SETTINGS_GROUP!r} "
            f"(groups: {', '.join(sorted(by_id)) or 'none'})"
        )
    return load_settings(**by_id[SETTINGS_GROUP])
