package io.adstream.flink;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.TimestampAssigner;
import org.apache.flink.api.common.eventtime.TimestampAssignerSupplier;
import org.apache.flink.api.common.eventtime.WatermarkAlignmentParams;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.util.clock.RelativeClock;

/**
 * A watermark strategy whose splits turn idle only while the job's other inputs are read.
 *
 * <p>Flink's idleness ({@code scan.watermark.idle-timeout}, {@link
 * WatermarkStrategy#withIdleness}) calls a split idle once it has delivered nothing for the
 * timeout, whatever the reason. When the reason is that nothing can be read at all (the broker is
 * away, the process was paused) every split turns idle; when reading resumes, the split read first
 * moves the watermark past what the others still hold, and their on-time records are late.
 *
 * <p>Here a split's inactivity counts only while records of other splits (of any source in this
 * JVM) are read: a partition with no traffic is idle after the timeout, as with Flink's; an outage
 * or a pause, during which nothing is read, makes no split idle. The others count as read for a
 * second after a periodic check (every 200 ms) saw their records, so a trickle of one record a
 * second elsewhere is enough; and at most a second counts per check, so the gap of a paused
 * process is not counted whole (an outage or a pause adds at most a second). A JVM reads alone:
 * a TaskManager whose every split has nothing to read holds the watermark until one has.
 */
public final class InputIdleness<T> implements WatermarkStrategy<T> {

    private static final long serialVersionUID = 1L;

    /** Records read by every split of every source with this strategy in this JVM. */
    private static final AtomicLong READ = new AtomicLong();

    /**
     * How long the others count as read after a check saw their records; and the most of the
     * time between two periodic checks that counts as inactivity.
     */
    static final long ACTIVE_NANOS = Duration.ofSeconds(1).toNanos();

    private final WatermarkStrategy<T> watermarks;
    private final Duration timeout;

    /** {@code timeout} must be positive ({@link InputIdlenessSourceFactory} checks it). */
    public InputIdleness(WatermarkStrategy<T> watermarks, Duration timeout) {
        this.watermarks = watermarks;
        this.timeout = timeout;
    }

    @Override
    public WatermarkGenerator<T> createWatermarkGenerator(
            WatermarkGeneratorSupplier.Context context) {
        return new Generator<>(
                watermarks.createWatermarkGenerator(context),
                context.getInputActivityClock(),
                timeout,
                READ);
    }

    @Override
    public TimestampAssigner<T> createTimestampAssigner(
            TimestampAssignerSupplier.Context context) {
        return watermarks.createTimestampAssigner(context);
    }

    @Override
    public WatermarkAlignmentParams getAlignmentParameters() {
        return watermarks.getAlignmentParameters();
    }

    /** One split's watermarks, idle once others were read for the timeout while it was not. */
    static final class Generator<T> implements WatermarkGenerator<T> {
        private final WatermarkGenerator<T> watermarks;
        private final RelativeClock clock;
        private final long timeoutNanos;
        private final AtomicLong allRead;

        private long read;
        private long readAtCheck = -1;
        private long allReadAtCheck = -1;
        private long checkedAt;
        private long othersReadAt;
        private long inactiveNanos;
        private boolean idle;

        Generator(
                WatermarkGenerator<T> watermarks,
                RelativeClock clock,
                Duration timeout,
                AtomicLong allRead) {
            this.watermarks = watermarks;
            this.clock = clock;
            this.timeoutNanos = timeout.toNanos();
            this.allRead = allRead;
            this.checkedAt = clock.relativeTimeNanos();
            this.othersReadAt = checkedAt - ACTIVE_NANOS - 1;
        }

        @Override
        public void onEvent(T event, long eventTimestamp, WatermarkOutput output) {
            watermarks.onEvent(event, eventTimestamp, output);
            read++;
            allRead.incrementAndGet();
            idle = false;
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            long now = clock.relativeTimeNanos();
            long all = allRead.get();
            if (all != allReadAtCheck) {
                othersReadAt = now; // or this split's own: then it is active anyway
            }
            if (read != readAtCheck) {
                inactiveNanos = 0;
            } else if (now - othersReadAt <= ACTIVE_NANOS) {
                inactiveNanos += Math.min(now - checkedAt, ACTIVE_NANOS);
            } // else nothing was read anywhere: the inputs wait, and so does this split
            readAtCheck = read;
            allReadAtCheck = all;
            checkedAt = now;
            if (inactiveNanos < timeoutNanos) {
                watermarks.onPeriodicEmit(output);
            } else if (!idle) {
                output.markIdle();
                idle = true;
            }
        }
    }
}
