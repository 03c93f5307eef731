package io.adstream.flink.kinesis;

import java.io.IOException;
import java.io.Serializable;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.util.Collector;
import software.amazon.awssdk.services.kinesis.model.Record;

/**
 * Turns a Kinesis record into the source's elements (none, one or more).
 *
 * @param <T> the elements
 */
interface RecordDeserializer<T> extends Serializable, ResultTypeQueryable<T> {

    /** Called once per reader, before the first record. */
    void open(DeserializationSchema.InitializationContext context) throws Exception;

    /** The elements of {@code record}, read from shard {@code shardId}, into {@code out}. */
    void deserialize(Record record, String shardId, Collector<T> out) throws IOException;
}
