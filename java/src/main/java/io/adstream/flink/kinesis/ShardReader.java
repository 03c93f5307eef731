package io.adstream.flink.kinesis;

import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.flink.connector.base.source.reader.RecordsBySplits;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsAddition;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsChange;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.ExpiredIteratorException;
import software.amazon.awssdk.services.kinesis.model.GetRecordsRequest;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.GetShardIteratorRequest;
import software.amazon.awssdk.services.kinesis.model.KinesisException;
import software.amazon.awssdk.services.kinesis.model.KmsThrottlingException;
import software.amazon.awssdk.services.kinesis.model.LimitExceededException;
import software.amazon.awssdk.services.kinesis.model.ProvisionedThroughputExceededException;
import software.amazon.awssdk.services.kinesis.model.Record;

/**
 * Polls the shards of one reader with GetRecords, one call per {@link #fetch()}, always the shard
 * whose turn comes first, within what Kinesis allows:
 *
 * <ul>
 *   <li>at most one call per shard every 200 ms (Kinesis serves 5 per second per shard, shared by
 *       every consumer of the stream);
 *   <li>a shard that returned nothing rests for {@code source.reader.empty-records-fetch-interval};
 *   <li>a throttled shard backs off, doubling from 200 ms up to 10 s;
 *   <li>an expired iterator (they last 5 minutes) is replaced by one after the last record read.
 * </ul>
 *
 * <p>A shard is finished when GetRecords returns no next iterator (a closed shard read to its end);
 * also when it returns nothing and is not behind (MillisBehindLatest 0) and the shard was closed
 * when listed (emulators such as moto never end a closed shard's iterators) or the source is
 * bounded. Bounded, records that arrived after the bound are dropped and end the shard.
 */
final class ShardReader implements SplitReader<Record, ShardSplit> {

    private static final Logger LOG = LoggerFactory.getLogger(ShardReader.class);

    static final long MIN_CALL_INTERVAL_MS = 200;
    static final long MAX_BACKOFF_MS = 10_000;

    /** How long to wait when no shard is assigned (a new shard wakes the reader up at once). */
    private static final long IDLE_WAIT_MS = 1_000;

    private final KinesisAsyncClient kinesis;
    private final String streamArn;
    private final KinesisSource.ReadSettings settings;
    private final List<Cursor> cursors = new ArrayList<>();
    private final Set<String> paused = new HashSet<>();
    private final Object wakeUps = new Object();
    private boolean wokenUp;

    ShardReader(KinesisConnection connection, KinesisSource.ReadSettings settings) {
        this(connection.createClient(), connection.streamArn(), settings);
    }

    ShardReader(KinesisAsyncClient kinesis, String streamArn, KinesisSource.ReadSettings settings) {
        this.kinesis = kinesis;
        this.streamArn = streamArn;
        this.settings = settings;
    }

    /** Where one shard is read. */
    private static final class Cursor {
        final ShardSplit split;
        String iterator;
        String lastSequenceNumber;
        long nextCallAt;
        long backoff;

        Cursor(ShardSplit split) {
            this.split = split;
        }
    }

    @Override
    public RecordsWithSplitIds<Record> fetch() throws IOException {
        Cursor next = null;
        for (Cursor cursor : cursors) {
            if (!paused.contains(cursor.split.shardId())
                    && (next == null || cursor.nextCallAt < next.nextCallAt)) {
                next = cursor;
            }
        }
        long wait = next == null ? IDLE_WAIT_MS : next.nextCallAt - System.currentTimeMillis();
        if (wait > 0) {
            sleep(wait);
            return new RecordsBySplits.Builder<Record>().build();
        }
        return poll(next);
    }

    private RecordsWithSplitIds<Record> poll(Cursor cursor) throws IOException {
        String shardId = cursor.split.shardId();
        long now = System.currentTimeMillis();
        GetRecordsResponse response;
        try {
            response = getRecords(cursor);
        } catch (ProvisionedThroughputExceededException
                | LimitExceededException
                | KmsThrottlingException throttled) {
            cursor.backoff =
                    Math.min(Math.max(2 * cursor.backoff, MIN_CALL_INTERVAL_MS), MAX_BACKOFF_MS);
            cursor.nextCallAt = now + cursor.backoff;
            LOG.debug("Shard {} throttled, next call in {} ms", shardId, cursor.backoff);
            return new RecordsBySplits.Builder<Record>().build();
        } catch (KinesisException failed) {
            throw new IOException(
                    String.format(
                            "Cannot read shard %s of Kinesis stream %s: %s",
                            shardId, streamArn, failed.getMessage()),
                    failed);
        }
        cursor.backoff = 0;
        List<Record> records = response.records();
        int kept = settings.bounded() ? arrivedByTheBound(records) : records.size();
        String end = endOfShard(cursor.split, response, kept);
        records = records.subList(0, kept);
        cursor.iterator = response.nextShardIterator();
        if (!records.isEmpty()) {
            cursor.lastSequenceNumber = records.get(records.size() - 1).sequenceNumber();
        }
        cursor.nextCallAt =
                now
                        + (records.isEmpty()
                                ? settings.emptyShardPause().toMillis()
                                : MIN_CALL_INTERVAL_MS);

        RecordsBySplits.Builder<Record> batch = new RecordsBySplits.Builder<>();
        if (end == null && atTheTip(response)) {
            batch.add(shardId, tip(now));
        } else {
            batch.addAll(shardId, records);
        }
        if (end != null) {
            batch.addFinishedSplit(shardId);
            cursors.remove(cursor);
            LOG.info("Shard {} of {} finished: {}", shardId, streamArn, end);
        }
        return batch.build();
    }

    /** How many of the records, from the first, arrived at or before the bound. */
    private int arrivedByTheBound(List<Record> records) {
        int kept = 0;
        while (kept < records.size()
                && !records.get(kept)
                        .approximateArrivalTimestamp()
                        .isAfter(settings.boundedUntil())) {
            kept++;
        }
        return kept;
    }

    /**
     * Why the shard is finished after this answer (of which {@code kept} records count), or null.
     */
    private String endOfShard(ShardSplit split, GetRecordsResponse response, int kept) {
        if (response.nextShardIterator() == null) {
            return "closed, read to its end";
        }
        if (kept < response.records().size()) {
            return "bounded, reached a record that arrived after " + settings.boundedUntil();
        }
        boolean atTheTip = atTheTip(response);
        if (atTheTip && settings.bounded()) {
            return "bounded, read to the tip";
        }
        return atTheTip && split.closed() ? "closed, read to the tip" : null;
    }

    /** Whether the answer says the shard holds nothing more now. */
    private static boolean atTheTip(GetRecordsResponse response) {
        Long behind = response.millisBehindLatest();
        return response.records().isEmpty() && (behind == null || behind == 0);
    }

    /**
     * A marker, queued after the records of a shard, saying that at {@code now} the shard had
     * nothing more: once it is emitted, every record that arrived before {@code now} has been
     * handed downstream ({@link KinesisSourceReader}'s {@code tipReachedAt} metric).
     */
    static Record tip(long now) {
        return Record.builder().approximateArrivalTimestamp(Instant.ofEpochMilli(now)).build();
    }

    /** Whether a record is a {@link #tip} marker rather than one read from the stream. */
    static boolean isTip(Record record) {
        return record.sequenceNumber() == null;
    }

    private GetRecordsResponse getRecords(Cursor cursor) {
        if (cursor.iterator == null) {
            cursor.iterator = shardIterator(cursor);
        }
        try {
            return getRecords(cursor.iterator);
        } catch (ExpiredIteratorException expired) {
            cursor.iterator = shardIterator(cursor);
            return getRecords(cursor.iterator);
        }
    }

    private GetRecordsResponse getRecords(String iterator) {
        return KinesisConnection.await(
                kinesis.getRecords(
                        GetRecordsRequest.builder()
                                .streamARN(streamArn)
                                .shardIterator(iterator)
                                .limit(settings.maxRecordsPerCall())
                                .build()));
    }

    /** An iterator just after the last record read, or at the shard's starting position. */
    private String shardIterator(Cursor cursor) {
        ShardSplit.Position position =
                cursor.lastSequenceNumber == null
                        ? cursor.split.position()
                        : ShardSplit.Position.after(cursor.lastSequenceNumber);
        return KinesisConnection.await(
                        kinesis.getShardIterator(
                                GetShardIteratorRequest.builder()
                                        .streamARN(streamArn)
                                        .shardId(cursor.split.shardId())
                                        .shardIteratorType(position.type())
                                        .startingSequenceNumber(position.sequenceNumber())
                                        .timestamp(position.timestamp())
                                        .build()))
                .shardIterator();
    }

    private void sleep(long millis) throws IOException {
        synchronized (wakeUps) {
            try {
                if (!wokenUp) {
                    wakeUps.wait(millis);
                }
            } catch (InterruptedException interrupted) {
                Thread.currentThread().interrupt();
                throw new IOException("Interrupted while waiting to poll Kinesis", interrupted);
            } finally {
                wokenUp = false;
            }
        }
    }

    @Override
    public void handleSplitsChanges(SplitsChange<ShardSplit> change) {
        if (!(change instanceof SplitsAddition)) {
            throw new UnsupportedOperationException("Unsupported change of splits: " + change);
        }
        change.splits().forEach(split -> cursors.add(new Cursor(split)));
    }

    @Override
    public void pauseOrResumeSplits(
            Collection<ShardSplit> toPause, Collection<ShardSplit> toResume) {
        toPause.forEach(split -> paused.add(split.shardId()));
        toResume.forEach(split -> paused.remove(split.shardId()));
    }

    @Override
    public void wakeUp() {
        synchronized (wakeUps) {
            wokenUp = true;
            wakeUps.notifyAll();
        }
    }

    @Override
    public void close() {
        kinesis.close();
    }
}
