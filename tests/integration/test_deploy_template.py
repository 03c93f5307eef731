"""deploy/adstream.yaml, the CloudFormation template of SPEC section 9.

It passes cfn-lint; what it gives the jobs are valid settings by their names; and it deploys
into the emulator's CloudFormation, which creates the streams, the bucket, the log group and
the roles with exactly these permissions, and skips the resource types it does not know.
"""

import ast
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml

from adstream.events.outcomes import ALL_TOPICS, INPUT_TOPICS, OUTCOME_TOPICS
from adstream.join.msf import runtime_settings
from adstream.lakehouse.catalog import spark_catalog_conf
from adstream.services import aws
from adstream.services.kinesis import retention, stream_shards
from adstream.services.process import wait_until
from adstream.settings import PROJECT_ROOT, Settings, load_settings

TEMPLATE: Final = PROJECT_ROOT / "deploy" / "adstream.yaml"

MOTO_UNDEPLOYED_TYPES: Final = {
    "AWS::Athena::WorkGroup",
    "AWS::Glue::Database",
    "AWS::Glue::Job",
    "AWS::KinesisAnalyticsV2::Application",
    "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption",
    "AWS::Logs::LogStream",
}
"""Resource types moto's CloudFormation (5.2) skips: it creates nothing for them, reports no
error, and leaves out the outputs that refer to them (listed in docs/aws.md)."""

STACK: Final = "adstream-deploy-test"
BUCKET: Final = "adstream-deploy-test"
PREFIX: Final = "lake"
STREAM_PREFIX: Final = "deploy-"
SHARDS: Final = 3
WINDOW_MINUTES: Final = 15
REGION: Final = "eu-west-1"
PYTHON_MODULES: Final = (
    f"s3://{BUCKET}/{PREFIX}/glue/adstream-0.1.0-py3-none-any.whl,pydantic-settings==2.12.0"
)
"""A value of the parameter EnrichPythonModules (`adstream package` writes the real one)."""
"""Region of the template-only tests (the emulator's is the settings' default)."""

_NO_VALUE: Final = object()
"""AWS::NoValue: the property it is given to is left out."""


def resolve(node: Any, names: dict[str, Any], conditions: dict[str, Any]) -> Any:
    """The value CloudFormation gives a piece of the template.

    Knows Ref, Fn::Sub (its string form), Fn::If, Fn::Not and Fn::Equals: what the jobs'
    properties use. `names` are the parameters, pseudo parameters and resources' Ref values.
    """

    def walk(part: Any) -> Any:
        if isinstance(part, list):
            return [value for value in map(walk, part) if value is not _NO_VALUE]
        if not isinstance(part, dict):
            return part
        if "Ref" in part:
            return names[part["Ref"]]
        if "Fn::Sub" in part:
            return re.sub(r"\$\{([^}]+)\}", lambda match: str(names[match[1]]), part["Fn::Sub"])
        if "Fn::If" in part:
            condition, when_true, when_false = part["Fn::If"]
            return walk(when_true if walk(conditions[condition]) else when_false)
        if "Fn::Not" in part:
            return not walk(part["Fn::Not"][0])
        if "Fn::Equals" in part:
            left, right = walk(part["Fn::Equals"])
            return left == right
        resolved = {key: walk(value) for key, value in part.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    return walk(node)


def resolved_properties(
    logical_id: str, stream_prefix: str, python_modules: str = PYTHON_MODULES
) -> Any:
    """The properties of one resource, deployed with these test parameters in REGION."""
    template = cfn_yaml.load(str(TEMPLATE))
    names = {
        "BucketName": BUCKET,
        "Prefix": PREFIX,
        "StreamPrefix": stream_prefix,
        "EnrichPythonModules": python_modules,
        "StreamShards": str(SHARDS),
        "WindowMinutes": str(WINDOW_MINUTES),
        "AWS::AccountId": "123456789012",
        "AWS::NoValue": _NO_VALUE,
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::StackName": STACK,
        "DataBucket": BUCKET,  # a bucket's Ref is its name
    }
    properties = template["Resources"][logical_id]["Properties"]
    return resolve(properties, names, template["Conditions"])


def test_cfn_lint_finds_nothing() -> None:
    assert [str(match) for match in lint_file(TEMPLATE)] == []


@pytest.mark.parametrize("stream_prefix", ["", "prod-"])
def test_the_join_application_gets_valid_settings_by_their_names(
    stream_prefix: str, tmp_path: Path
) -> None:
    application = resolved_properties("JoinApplication", stream_prefix)
    property_groups = application["ApplicationConfiguration"]["EnvironmentProperties"][
        "PropertyGroups"
    ]
    groups = {group["PropertyGroupId"]: group["PropertyMap"] for group in property_groups}
    # The job reads them as MSF writes them: the same list, as JSON.
    runtime_properties = tmp_path / "application_properties.json"
    runtime_properties.write_text(json.dumps(property_groups))
    settings = runtime_settings(runtime_properties)

    assert groups["kinesis.analytics.flink.run.options"] == {
        "python": "adstream_msf/main.py",
        "jarfile": "lib/adstream-msf.jar",
    }
    # No prefix, no property: a property's value may not be empty, and the default is empty.
    assert groups["adstream"] == {
        "platform": "aws",
        "aws_region": REGION,
        "attribution_window": f"PT{WINDOW_MINUTES}M",
        **({"stream_prefix": stream_prefix} if stream_prefix else {}),
    }
    assert (settings.platform, settings.stream_prefix, settings.attribution_window) == (
        "aws",
        stream_prefix,
        timedelta(minutes=WINDOW_MINUTES),
    )


def test_the_glue_job_gets_valid_settings_and_the_catalog_of_the_spark_job() -> None:
    job = resolved_properties("EnrichJob", STREAM_PREFIX)
    arguments = dict(job["DefaultArguments"])
    settings = load_settings(**json.loads(arguments.pop("--adstream-settings")))
    conf = dict(setting.split("=", 1) for setting in arguments.pop("--conf").split(" --conf "))

    assert (
        settings.platform,
        settings.aws_region,
        settings.stream_prefix,
        settings.iceberg_catalog,
        settings.warehouse,
    ) == ("aws", REGION, STREAM_PREFIX, "glue", f"s3://{BUCKET}/{PREFIX}/warehouse")
    assert conf == {
        **spark_catalog_conf(settings),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
    }
    assert arguments == {
        "--job-language": "python",
        "--datalake-formats": "iceberg",
        "--additional-python-modules": PYTHON_MODULES,
        "--python-modules-installer-option": "--no-deps",
        "--checkpoint-location": f"s3://{BUCKET}/{PREFIX}/checkpoints/enrich/",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
    }
    assert job["Command"] == {
        "Name": "gluestreaming",
        "PythonVersion": "3",
        "ScriptLocation": f"s3://{BUCKET}/{PREFIX}/glue/adstream_enrich.py",
    }


@pytest.fixture(scope="module")
def stack(aws_emulator: Settings) -> Settings:
    """The template deployed once into the emulator; the settings that name its streams."""
    settings = aws_emulator.model_copy(
        update={"stream_prefix": STREAM_PREFIX, "stream_shards": SHARDS}
    )
    cloudformation = aws.client(settings, "cloudformation")
    parameters = {
        "StreamShards": str(SHARDS),
        "WindowMinutes": str(WINDOW_MINUTES),
        "BucketName": BUCKET,
        "Prefix": PREFIX,
        "StreamPrefix": STREAM_PREFIX,
        "EnrichPythonModules": PYTHON_MODULES,
        "CreateJoinApplication": "true",  # so that only the lack of support skips it
    }
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    wait_until(
        _created(cloudformation), timeout=180, what=f"stack {STACK} to be created", interval=0.5
    )
    return settings


def _created(cloudformation: Any) -> Callable[[], bool]:
    def created() -> bool:
        found = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        status = found["StackStatus"]
        assert status in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE"), (
            f"{status}: {found.get('StackStatusReason')}"
        )
        return bool(status == "CREATE_COMPLETE")

    return created


def _account(settings: Settings) -> str:
    return str(aws.client(settings, "sts").get_caller_identity()["Account"])


@pytest.mark.integration
def test_the_stack_creates_the_six_streams_with_the_shards_asked_for(stack: Settings) -> None:
    assert stream_shards(stack) == {f"{STREAM_PREFIX}{topic}": SHARDS for topic in ALL_TOPICS}
    assert retention(stack) == {
        f"{STREAM_PREFIX}{topic}": timedelta(hours=24) for topic in ALL_TOPICS
    }


@pytest.mark.integration
def test_the_emulator_skips_exactly_the_types_it_does_not_know(stack: Settings) -> None:
    resources = aws.client(stack, "cloudformation").describe_stack_resources(StackName=STACK)
    # moto lists a resource it skipped without a logical id or type.
    created = {
        resource["ResourceType"]
        for resource in resources["StackResources"]
        if "LogicalResourceId" in resource
    }
    template = cfn_yaml.load(str(TEMPLATE))
    in_template = {resource["Type"] for resource in template["Resources"].values()}

    assert in_template - created == MOTO_UNDEPLOYED_TYPES


@pytest.mark.integration
def test_the_outputs_name_what_was_created(stack: Settings) -> None:
    cloudformation = aws.client(stack, "cloudformation")
    found = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    account, region = _account(stack), stack.aws_region
    streams = {
        "ImpressionsStreamArn": "ad_impressions",
        "ClicksStreamArn": "ad_clicks",
        "JoinedStreamArn": "joined_output",
        "UniqueImpressionsStreamArn": "unique_impressions",
        "UnmatchedClicksStreamArn": "unmatched_clicks",
        "RejectedEventsStreamArn": "rejected_events",
    }

    # JoinApplicationName, EnrichJobName and QueryWorkGroupName name skipped resources: moto
    # leaves them out.
    assert {output["OutputKey"]: output["OutputValue"] for output in found} == {
        **{
            key: f"arn:aws:kinesis:{region}:{account}:stream/{STREAM_PREFIX}{topic}"
            for key, topic in streams.items()
        },
        "BucketName": BUCKET,
        "JoinRoleArn": f"arn:aws:iam::{account}:role/{STACK}-msf-{region}",
        "EnrichRoleArn": f"arn:aws:iam::{account}:role/{STACK}-glue-{region}",
    }


@pytest.mark.integration
def test_the_bucket_is_encrypted_with_s3_managed_keys(stack: Settings) -> None:
    s3 = aws.client(stack, "s3")
    encryption = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]

    assert [rule["ApplyServerSideEncryptionByDefault"] for rule in encryption["Rules"]] == [
        {"SSEAlgorithm": "AES256"}
    ]


@pytest.mark.integration
def test_the_join_log_group_is_created(stack: Settings) -> None:
    name = f"/aws/kinesis-analytics/{STACK}-join"
    groups = aws.client(stack, "logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]

    assert [(group["logGroupName"], group["retentionInDays"]) for group in groups] == [(name, 14)]


def _role(settings: Settings, name: str) -> tuple[Any, list[dict[str, Any]]]:
    """A role's trust policy and the statements of its one inline policy."""
    iam = aws.client(settings, "iam")
    trust = _document(iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"])
    (policy,) = iam.list_role_policies(RoleName=name)["PolicyNames"]
    document = _document(iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
    return trust, document["Statement"]


def _document(policy: Any) -> Any:
    """A policy document as a dict.

    moto 5.2 answers with the Python repr of a policy given inline in a template's role (as it
    keeps it), which boto3 leaves a string; AWS sends JSON, which boto3 decodes.
    """
    return ast.literal_eval(policy) if isinstance(policy, str) else policy


def _trusting(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


@pytest.mark.integration
def test_the_join_role_reads_the_inputs_writes_the_outcomes_and_nothing_else(
    stack: Settings,
) -> None:
    account, region = _account(stack), stack.aws_region
    stream = f"arn:aws:kinesis:{region}:{account}:stream/{STREAM_PREFIX}"
    group = f"arn:aws:logs:{region}:{account}:log-group:/aws/kinesis-analytics/{STACK}-join"

    trust, statements = _role(stack, f"{STACK}-msf-{region}")

    assert trust == _trusting("kinesisanalytics.amazonaws.com")
    assert statements == [
        {
            "Sid": "ReadInputStreams",
            "Effect": "Allow",
            "Action": [
                "kinesis:DescribeStreamSummary",
                "kinesis:GetRecords",
                "kinesis:GetShardIterator",
                "kinesis:ListShards",
            ],
            "Resource": [f"{stream}{topic}" for topic in INPUT_TOPICS],
        },
        {
            "Sid": "WriteOutcomeStreams",
            "Effect": "Allow",
            "Action": ["kinesis:PutRecords"],
            "Resource": [f"{stream}{topic}" for topic in OUTCOME_TOPICS],
        },
        {
            "Sid": "ReadCode",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}/msf/adstream-msf.zip",
        },
        {
            "Sid": "FindLogGroups",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogGroups"],
            "Resource": f"arn:aws:logs:{region}:{account}:log-group:*",
        },
        {
            "Sid": "FindLogStreams",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogStreams"],
            "Resource": f"{group}:log-stream:*",
        },
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:PutLogEvents"],
            "Resource": f"{group}:log-stream:join",
        },
        {
            "Sid": "PutMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
        },
    ]


@pytest.mark.integration
def test_the_glue_role_reads_the_outcomes_writes_the_tables_and_nothing_else(
    stack: Settings,
) -> None:
    account, region = _account(stack), stack.aws_region
    stream = f"arn:aws:kinesis:{region}:{account}:stream/{STREAM_PREFIX}"
    objects = f"arn:aws:s3:::{BUCKET}/{PREFIX}"
    glue = f"arn:aws:glue:{region}:{account}"
    logs = f"arn:aws:logs:{region}:{account}:log-group:/aws-glue/jobs/*"

    trust, statements = _role(stack, f"{STACK}-glue-{region}")

    assert trust == _trusting("glue.amazonaws.com")
    assert statements == [
        {
            "Sid": "ReadOutcomeStreams",
            "Effect": "Allow",
            "Action": [
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetRecords",
                "kinesis:GetShardIterator",
                "kinesis:ListShards",
            ],
            "Resource": [f"{stream}{topic}" for topic in OUTCOME_TOPICS],
        },
        {
            "Sid": "ReadWriteTablesAndCheckpoints",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": [f"{objects}/warehouse/*", f"{objects}/checkpoints/enrich/*"],
        },
        {
            "Sid": "ReadCode",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{objects}/glue/*",
        },
        {
            "Sid": "ListOwnPrefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": f"arn:aws:s3:::{BUCKET}",
            "Condition": {
                "StringLike": {
                    "s3:prefix": [
                        f"{PREFIX}/warehouse/*",
                        f"{PREFIX}/checkpoints/enrich/*",
                        f"{PREFIX}/glue/*",
                    ]
                }
            },
        },
        {
            "Sid": "CatalogTables",
            "Effect": "Allow",
            "Action": [
                "glue:CreateDatabase",
                "glue:CreateTable",
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:UpdateTable",
            ],
            "Resource": [
                f"{glue}:catalog",
                f"{glue}:database/ad_analytics",
                f"{glue}:table/ad_analytics/*",
            ],
        },
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [logs, f"{logs}:log-stream:*"],
        },
        {
            "Sid": "PutMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "Glue"}},
        },
    ]
