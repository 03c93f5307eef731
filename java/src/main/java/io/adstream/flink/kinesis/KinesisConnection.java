package io.adstream.flink.kinesis;

import java.io.Serializable;
import java.net.URI;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.auth.credentials.SystemPropertyCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClientBuilder;

/**
 * How to reach the stream: its ARN, the region, an endpoint override and the credentials, as the
 * table options give them. Serializable, so that the enumerator, every reader and every sink writer
 * build their own client from it where they run.
 *
 * @param streamArn the stream
 * @param region the region of every client
 * @param endpoint where to send every request (an emulator), or null for the region's endpoint
 * @param credentials how credentials are found
 * @param accessKeyId the key for {@link KinesisOptions.CredentialsProvider#BASIC}, else null
 * @param secretKey its secret, else null
 */
record KinesisConnection(
        String streamArn,
        String region,
        String endpoint,
        KinesisOptions.CredentialsProvider credentials,
        String accessKeyId,
        String secretKey)
        implements Serializable {

    /**
     * A new client: the Netty HTTP client over HTTP/1.1, the SDK's standard retries. The caller
     * closes it. (The SDK would pick HTTP/2 for Kinesis, which only enhanced fan-out needs and
     * emulators may not speak. It also speaks CBOR to Kinesis unless the system property {@code
     * aws.cborEnabled} is false, which an emulator such as moto needs.)
     */
    KinesisAsyncClient createClient() {
        KinesisAsyncClientBuilder builder =
                KinesisAsyncClient.builder()
                        .region(Region.of(region))
                        .credentialsProvider(credentialsProvider())
                        .httpClientBuilder(
                                NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1));
        if (endpoint != null) {
            builder.endpointOverride(URI.create(endpoint));
        }
        return builder.build();
    }

    private AwsCredentialsProvider credentialsProvider() {
        switch (credentials) {
            case BASIC:
                return StaticCredentialsProvider.create(
                        AwsBasicCredentials.create(accessKeyId, secretKey));
            case ENV_VAR:
                return EnvironmentVariableCredentialsProvider.create();
            case SYS_PROP:
                return SystemPropertyCredentialsProvider.create();
            default:
                return DefaultCredentialsProvider.builder().build();
        }
    }

    /** The stream's name: what follows {@code stream/} in its ARN (validated by the factory). */
    String streamName() {
        return streamArn.substring(streamArn.indexOf(":stream/") + ":stream/".length());
    }

    /** Without the secret: this may be logged. */
    @Override
    public String toString() {
        return String.format(
                "KinesisConnection[%s, region %s, endpoint %s, credentials %s]",
                streamArn, region, endpoint == null ? "default" : endpoint, credentials);
    }

    /** The region in a Kinesis stream ARN (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME). */
    static String regionOf(String streamArn) {
        String[] parts = streamArn.split(":", 6);
        if (parts.length != 6
                || !parts[0].equals("arn")
                || !parts[2].equals("kinesis")
                || parts[3].isEmpty()
                || !parts[5].startsWith("stream/")) {
            throw new IllegalArgumentException(
                    "'"
                            + streamArn
                            + "' is not the ARN of a Kinesis stream"
                            + " (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)");
        }
        return parts[3];
    }

    /** The answer of an SDK call, waited for; its failure thrown as the SDK's own exception. */
    static <T> T await(CompletableFuture<T> call) {
        try {
            return call.join();
        } catch (CompletionException failed) {
            if (failed.getCause() instanceof SdkException) {
                throw (SdkException) failed.getCause();
            }
            throw failed;
        }
    }
}
