package io.adstream.flink.kinesis;

import java.util.Set;
import org.apache.flink.api.connector.source.SourceEvent;

/**
 * From a reader to the enumerator: these shards were read to their end, so their children may be
 * handed out.
 */
record ShardsFinishedEvent(Set<String> shardIds) implements SourceEvent {

    ShardsFinishedEvent {
        shardIds = Set.copyOf(shardIds);
    }
}
