/**
 * adstream's Flink table connector for Amazon Kinesis Data Streams: {@code 'connector' =
 * 'kinesis'}, with the identifier and option names of the official connector
 * (flink-connector-aws-kinesis-streams 6.x), so a job can move to the official jar, e.g. on Amazon
 * Managed Service for Apache Flink, without a change.
 *
 * <pre>{@code
 * CREATE TABLE clicks (
 *   payload BYTES,
 *   arrived TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,          -- ApproximateArrivalTimestamp
 *   shard VARCHAR(128) METADATA FROM 'shard-id' VIRTUAL,
 *   sequence_number VARCHAR(128) METADATA FROM 'sequence-number' VIRTUAL,
 *   WATERMARK FOR arrived AS arrived - INTERVAL '5' SECOND               -- per shard, in the source
 * ) WITH (
 *   'connector' = 'kinesis',
 *   'stream.arn' = 'arn:aws:kinesis:us-east-1:123456789012:stream/clicks',
 *   'source.init.position' = 'TRIM_HORIZON',
 *   'format' = 'raw'
 * );
 * CREATE TABLE outcomes (impression_id STRING, payload STRING) PARTITIONED BY (impression_id)
 *   WITH ('connector' = 'kinesis', 'stream.arn' = '...', 'format' = 'json');
 * }</pre>
 *
 * <p>Options ({@link io.adstream.flink.kinesis.KinesisOptions}), official unless marked:
 *
 * <ul>
 *   <li>{@code stream.arn} (required), {@code format} (required: any Flink format);
 *   <li>{@code aws.region} (default: the ARN's region; the official connector requires it), {@code
 *       aws.endpoint}, {@code aws.credentials.provider} (AUTO, BASIC, ENV_VAR, SYS_PROP; default
 *       BASIC when both keys are set, else AUTO, the SDK's default chain), {@code
 *       aws.credentials.basic.accesskeyid}, {@code aws.credentials.basic.secretkey};
 *   <li>source: {@code source.init.position} (LATEST), {@code source.init.timestamp}, {@code
 *       source.init.timestamp.format} (yyyy-MM-dd'T'HH:mm:ss.SSSXXX), {@code
 *       source.shard.discovery.interval} (10 s), {@code source.shard.get-records.max-record-count}
 *       (10000), {@code source.reader.empty-records-fetch-interval} (250 ms), {@code
 *       source.reader.type} (POLLING only);
 *   <li>adstream's own: {@code scan.bounded.mode}, {@code unbounded} (default) or {@code latest}:
 *       read each shard up to the last record that arrived before the job was planned, then finish;
 *   <li>sink: {@code sink.batch.max-size} (500), {@code sink.requests.max-inflight} (50), {@code
 *       sink.requests.max-buffered} (10000), {@code sink.flush-buffer.size} (5 MiB, bytes per
 *       PutRecords), {@code sink.flush-buffer.timeout} (5000 ms), {@code sink.fail-on-error}
 *       (false), {@code sink.partitioner} ('random' only), {@code sink.partitioner-field-delimiter}
 *       (|).
 * </ul>
 *
 * <p>Official options this connector lacks (enhanced fan-out, assumed roles, profiles, custom shard
 * assigners, HTTP client tuning, the legacy {@code sink.producer.*}) are refused with the reason,
 * never ignored. Records of one partition key keep their order through the sink only with {@code
 * 'sink.requests.max-inflight' = '1'} (as with the official connector).
 *
 * <p>Against an emulator such as moto, set {@code aws.endpoint} and run the JVM with {@code
 * -Daws.cborEnabled=false} (the SDK speaks CBOR to Kinesis by default; moto only JSON).
 *
 * <p>The source: {@link io.adstream.flink.kinesis.KinesisSource} (enumerator {@link
 * io.adstream.flink.kinesis.ShardEnumerator}, reader {@link
 * io.adstream.flink.kinesis.KinesisSourceReader}, polling {@link
 * io.adstream.flink.kinesis.ShardReader}). The sink: {@link io.adstream.flink.kinesis.KinesisSink}
 * and {@link io.adstream.flink.kinesis.KinesisSinkWriter}. The table glue: {@link
 * io.adstream.flink.kinesis.KinesisDynamicTableFactory}.
 */
package io.adstream.flink.kinesis;
