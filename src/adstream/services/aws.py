"""AWS clients, in one place: region, endpoint (the emulator's or AWS's own) and credentials.

Credentials come from the standard AWS chain (environment, profile, instance role); with the
emulator, fixed dummy ones, so no real key is ever needed or sent to it.
"""

import logging
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from adstream.errors import AdstreamError
from adstream.settings import Settings

log = logging.getLogger(__name__)

EMULATOR_CREDENTIALS: Final = {
    "aws_access_key_id": "adstream-emulator",
    "aws_secret_access_key": "adstream-emulator",
}
"""What the emulator is given: it accepts any key; these are not secrets."""

_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
)


def client(settings: Settings, service: str) -> Any:
    """A client of `service` in the configured region, at the configured endpoint."""
    options: dict[str, Any] = {"region_name": settings.aws_region, "config": _CONFIG}
    if settings.aws_endpoint is not None:
        options["endpoint_url"] = settings.aws_endpoint
    if settings.aws_emulator:
        options.update(EMULATOR_CREDENTIALS)
    return boto3.session.Session().client(service, **options)


def sdk_environment(settings: Settings) -> dict[str, str]:
    """Variables a process using an AWS SDK (Java's, in Flink and Spark) needs.

    With the emulator, its dummy credentials; otherwise none: the standard chain (environment,
    profile, instance role) applies.
    """
    if not settings.aws_emulator:
        return {}
    return {
        "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": settings.aws_region,
    }


def error_code(error: Exception) -> str:
    """The AWS error code of a failed call ("" when it never got an answer)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def describe(error: Exception) -> str:
    """One line for a failed AWS call."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
    if isinstance(error, BotoCoreError):
        return str(error)
    return repr(error)


def where(settings: Settings) -> str:
    """The endpoint requests go to, for messages."""
    return settings.aws_endpoint or f"AWS {settings.aws_region}"


def unreachable(settings: Settings, error: Exception) -> AdstreamError:
    """The clear error when AWS (or the emulator) does not answer."""
    hint = (
        "; start the emulator with `adstream up --platform aws --emulator`"
        if settings.aws_emulator
        else ""
    )
    return AdstreamError(f"AWS is not reachable at {where(settings)}: {describe(error)}{hint}")


def ensure_bucket(settings: Settings, bucket: str) -> bool:
    """Make sure the bucket exists; True when it was created (only ever on the emulator).

    On AWS the bucket is the CloudFormation stack's (deploy/adstream.yaml): adstream never
    creates one there, and a missing one is an error.

    Raises:
        AdstreamError: AWS does not answer, or the bucket is missing or not reachable.
    """
    s3 = client(settings, "s3")
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if error_code(error) not in ("404", "NoSuchBucket") or not settings.aws_emulator:
            raise AdstreamError(
                f"S3 bucket {bucket} is not reachable at {where(settings)}: {describe(error)}; "
                "deploy the stack of deploy/adstream.yaml, or set warehouse to your bucket"
            ) from error
    except BotoCoreError as error:
        raise unreachable(settings, error) from error
    s3.create_bucket(Bucket=bucket)
    return True
