"""Flink's REST API, of a standalone cluster or of a job's local mini-cluster."""

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final

from adstream.errors import AdstreamError
from adstream.services.process import wait_until

log = logging.getLogger(__name__)

_REST_TIMEOUT_S: Final = 5.0
_CURRENT_OFFSET: Final = re.compile(
    r"KafkaSourceReader\.topic\.(.+)\.partition\.(\d+)\.currentOffset$"
)
"""A Kafka source's metric: the offset of the last record it emitted from a partition."""
_TIP_REACHED_AT: Final = re.compile(
    r"KinesisSource\.stream\.(.+)\.shard\.(shardId-\d+)\.tipReachedAt$"
)
"""A Kinesis source's metric (java/, KinesisSourceReader): the latest moment, in epoch
milliseconds, by which it had emitted everything the shard held then."""


class FlinkRest:
    """The REST API at `rest_url` (`http://host:port`)."""

    def __init__(self, rest_url: str) -> None:
        self.rest_url = rest_url

    def overview(self) -> dict[str, Any] | None:
        """REST `/overview` (TaskManagers, slots, jobs), or None when it does not answer."""
        try:
            overview: dict[str, Any] = self.rest("GET", "/overview")
        except AdstreamError:
            return None
        return overview

    def job_state(self, job_id: str) -> str:
        """The state of a job (RUNNING, FINISHED, FAILED, CANCELED, ...)."""
        state: str = self.rest("GET", f"/jobs/{job_id}")["state"]
        return state

    def job_failure(self, job_id: str) -> str | None:
        """The innermost cause of the job's latest failure, as the JobManager recorded it."""
        entries = self.rest("GET", f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
        if not entries:
            return None
        trace: str = entries[0]["stacktrace"]
        lines = trace.splitlines()
        causes = [
            line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by")
        ]
        return (causes or lines or [entries[0]["exceptionName"]])[-1][:500]

    def cancel_job(self, job_id: str) -> None:
        """Cancel a job (its retained checkpoints stay for the next run)."""
        self.rest("PATCH", f"/jobs/{job_id}?mode=cancel")

    def stop_job(self, job_id: str, *, drain: bool, directory: Path) -> bool:
        """Stop a job with a savepoint in `directory`, drained first when asked; True once done.

        False when Flink refused or failed it (e.g. some task not running yet): try again.
        """
        body = {"drain": drain, "targetDirectory": directory.resolve().as_uri()}
        trigger = self.rest("POST", f"/jobs/{job_id}/stop", body)["request-id"]
        answer: dict[str, Any] = {}

        def completed() -> bool:
            answer.update(self.rest("GET", f"/jobs/{job_id}/savepoints/{trigger}"))
            return bool(answer["status"]["id"] == "COMPLETED")

        wait_until(completed, timeout=300, what=f"the savepoint of job {job_id}", interval=0.5)
        failure = answer.get("operation", {}).get("failure-cause")
        if failure:
            log.info("stopping job %s failed, will retry: %s", job_id, str(failure)[:300])
            return False
        return True

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the REST API; its JSON answer, or one clear error line."""
        request = urllib.request.Request(
            self.rest_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_REST_TIMEOUT_S) as response:
                answer = response.read()
        except urllib.error.HTTPError as error:
            raise AdstreamError(f"Flink REST {method} {path}: HTTP {error.code}") from error
        except OSError as error:
            raise AdstreamError(
                f"Flink REST API at {self.rest_url} not reachable: {error}"
            ) from error
        return json.loads(answer) if answer else None

    def running_job(self) -> str | None:
        """The id of the one running job (a mini-cluster runs one), None if there is none."""
        jobs = self.rest("GET", "/jobs/overview")["jobs"]
        running = [job["jid"] for job in jobs if job["state"] == "RUNNING"]
        return running[0] if len(running) == 1 else None

    def source_offsets(self, job_id: str) -> dict[tuple[str, int], int]:
        """The offset of the last record each Kafka source has emitted, per topic and partition.

        From the sources' `currentOffset` metrics (set as each record is handed downstream); a
        partition not read yet is missing or negative.
        """
        found = self._source_metrics(job_id, _CURRENT_OFFSET)
        return {(topic, int(partition)): value for (topic, partition), value in found.items()}

    def shard_tips(self, job_id: str) -> dict[tuple[str, str], int]:
        """Per Kinesis stream and shard, the moment (epoch ms) the source had emitted all of it.

        From the sources' `tipReachedAt` metrics; 0 or missing for a shard not read to its tip
        yet, the largest long for a finished one.
        """
        return self._source_metrics(job_id, _TIP_REACHED_AT)

    def _source_metrics(self, job_id: str, pattern: re.Pattern[str]) -> dict[tuple[str, str], int]:
        """The source metrics matching `pattern` (two groups: the key), largest over subtasks."""
        values: dict[tuple[str, str], int] = {}
        for vertex in self.rest("GET", f"/jobs/{job_id}")["vertices"]:
            if not vertex["name"].startswith("Source:"):
                continue
            path = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
            names = [m["id"] for m in self.rest("GET", path) if pattern.search(m["id"])]
            if not names:
                continue
            query = urllib.parse.urlencode({"get": ",".join(names)})
            for metric in self.rest("GET", f"{path}?{query}"):
                found = pattern.search(metric["id"])
                assert found is not None
                key = (found.group(1), found.group(2))
                values[key] = max(values.get(key, -1), int(float(metric["value"])))
        return values
