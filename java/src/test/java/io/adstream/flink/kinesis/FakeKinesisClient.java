package io.adstream.flink.kinesis;

import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;

/** A Kinesis client for tests: each fake overrides the calls it answers. */
abstract class FakeKinesisClient implements KinesisAsyncClient {

    @Override
    public String serviceName() {
        return "kinesis";
    }

    @Override
    public void close() {}
}
