"""The local Apache Kafka broker: single node, KRaft mode, official jars, bound to loopback."""

import base64
import logging
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adstream.errors import AdstreamError
from adstream.services.kafka_client import broker_reachable, ensure_topics, topic_partitions
from adstream.services.process import LogTail, ManagedProcess, last_error, port_is_free, wait_until
from adstream.settings import LONGEST_TRANSACTION, Settings

log = logging.getLogger(__name__)

_MAIN_CLASS: Final = "kafka.Kafka"
_STORAGE_TOOL: Final = "kafka.tools.StorageTool"
_STOP_TIMEOUT_S: Final = 60.0

_LOG4J2: Final = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
"""


@dataclass(frozen=True)
class KafkaStatus:
    """What `adstream status` reports about the broker."""

    pid: int | None
    bootstrap_servers: str
    topics: dict[str, int]


class KafkaBroker:
    """The broker of one data directory: its files live under `<data_dir>/kafka/`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir.resolve() / "kafka"
        self.config_file = self.home / "server.properties"
        self.process = ManagedProcess("Kafka", self.home / "kafka.pid", str(self.config_file))

    @property
    def jars(self) -> Path:
        """Folder of the broker's jars, fetched by `make setup`."""
        return self.settings.lib_dir / "kafka"

    def start(self) -> bool:
        """Start the broker and create the topics; False when it was already running."""
        settings = self.settings
        if self.process.pid() is not None:
            ensure_topics(settings)
            return False
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise AdstreamError(f"Kafka jars not found in {self.jars}; run `make setup` first")
        for port in (settings.kafka_port, settings.kafka_controller_port):
            if not port_is_free(settings.kafka_host, port):
                raise AdstreamError(
                    f"port {port} on {settings.kafka_host} is already in use; stop what uses it "
                    "or choose other ports (ADSTREAM_KAFKA_PORT, ADSTREAM_KAFKA_CONTROLLER_PORT)"
                )
        self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            self._format_storage()
        log.info("starting Kafka on %s", settings.bootstrap_servers)
        began = time.monotonic()
        output = LogTail(self.log_file)
        process = self.process.start(self._java(_MAIN_CLASS, str(self.config_file)), self.log_file)
        wait_until(
            lambda: self._ready(process, output),
            timeout=settings.startup_timeout.total_seconds(),
            what=f"Kafka to accept requests (see {self.log_file})",
        )
        created = ensure_topics(settings)
        log.info(
            "Kafka ready in %.1f s (pid %d); topics created: %s",
            time.monotonic() - began,
            process.pid,
            ", ".join(created) or "none",
        )
        return True

    def stop(self) -> bool:
        """Stop the broker cleanly; False when it was not running."""
        stopped = self.process.stop(timeout=_STOP_TIMEOUT_S)
        if stopped:
            log.info("Kafka stopped")
        return stopped

    def status(self) -> KafkaStatus:
        """Whether the broker runs, where, and its topics."""
        pid = self.process.pid()
        topics = topic_partitions(self.settings) if pid and broker_reachable(self.settings) else {}
        return KafkaStatus(pid, self.settings.bootstrap_servers, topics)

    @property
    def log_file(self) -> Path:
        """The broker's console log."""
        return self.home / "kafka.log"

    def _ready(self, process: "subprocess.Popen[bytes]", output: LogTail) -> bool:
        if process.poll() is not None:
            raise AdstreamError(
                f"Kafka exited during start-up: {output.last_error()}; see {self.log_file}"
            )
        return broker_reachable(self.settings, timeout=1.0)

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise AdstreamError("java not found on PATH; install a JDK 17 or newer")
        return [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.jars}/*",
            main_class,
            *args,
        ]

    def _write_config(self) -> None:
        settings = self.settings
        host, port, controller = (
            settings.kafka_host,
            settings.kafka_port,
            settings.kafka_controller_port,
        )
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(settings.topic_partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The join's transactions (`join_transaction_timeout`) may stay open this long.
            "transaction.max.timeout.ms": str(int(LONGEST_TRANSACTION.total_seconds() * 1000)),
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "".join(f"{key}={value}\n" for key, value in properties.items())
        )
        (self.home / "log4j2.properties").write_text(_LOG4J2)

    def _format_storage(self) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        command = self._java(
            _STORAGE_TOOL,
            "format",
            f"--cluster-id={cluster_id}",  # with '=': an id may start with '-'
            "-c",
            str(self.config_file),
            "--ignore-formatted",
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise AdstreamError(f"could not format Kafka storage: {last_error(result.stderr)}")
