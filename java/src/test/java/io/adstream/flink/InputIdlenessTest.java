package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.BoundedOutOfOrdernessWatermarks;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.util.clock.ManualClock;
import org.junit.jupiter.api.Test;

/** When a split turns idle: only after the timeout of reads elsewhere while it read nothing. */
class InputIdlenessTest {

    private static final Duration TIMEOUT = Duration.ofSeconds(10);
    private static final Duration CHECK = Duration.ofMillis(200); // Flink's periodic emit

    private final ManualClock clock = new ManualClock();
    private final AtomicLong allRead = new AtomicLong();
    private final Output quietOutput = new Output();
    private final Output busyOutput = new Output();
    private final InputIdleness.Generator<Long> quiet = split();
    private final InputIdleness.Generator<Long> busy = split();

    private InputIdleness.Generator<Long> split() {
        return new InputIdleness.Generator<>(
                new BoundedOutOfOrdernessWatermarks<>(Duration.ofSeconds(5)),
                clock,
                TIMEOUT,
                allRead);
    }

    /** {@code seconds} of periodic checks, the busy split reading one record before each. */
    private void run(double seconds, boolean othersRead) {
        run(seconds, othersRead ? 1 : 0);
    }

    /** {@code seconds} of periodic checks, the busy split reading before every {@code nth}. */
    private void run(double seconds, int nth) {
        for (long step = 0; step < seconds * 1000 / CHECK.toMillis(); step++) {
            clock.advanceTime(CHECK);
            if (nth > 0 && step % nth == 0) {
                busy.onEvent(1L, 60_000, busyOutput);
            }
            busy.onPeriodicEmit(busyOutput);
            quiet.onPeriodicEmit(quietOutput);
        }
    }

    @Test
    void aSplitWithNothingToReadIsIdleOnceOthersWereReadForTheTimeout() {
        quiet.onEvent(1L, 50_000, quietOutput);
        run(9.8, true);
        assertThat(quietOutput.idle).isZero();
        assertThat(quietOutput.lastWatermark()).isEqualTo(50_000 - 5_000 - 1);
        run(0.4, true);
        assertThat(quietOutput.idle).isEqualTo(1); // marked once
        run(5, true);
        assertThat(quietOutput.idle).isEqualTo(1);
        assertThat(busyOutput.idle).isZero();
    }

    @Test
    void aTrickleElsewhereIsEnough() {
        run(0.2, 5); // the quiet split's first check
        run(9.8, 5); // one record a second elsewhere, checks every 200 ms
        assertThat(quietOutput.idle).isZero();
        run(0.4, 5);
        assertThat(quietOutput.idle).isEqualTo(1);
    }

    @Test
    void anOutageAddsAtMostASecond() {
        run(5, true);
        run(600, false); // the broker is away for ten minutes
        run(3.8, true);
        assertThat(quietOutput.idle).isZero();
        run(1.4, true);
        assertThat(quietOutput.idle).isEqualTo(1);
    }

    @Test
    void nothingReadAnywhereMakesNoSplitIdleHoweverLong() {
        quiet.onEvent(1L, 50_000, quietOutput);
        busy.onEvent(1L, 60_000, busyOutput);
        run(600, false); // the broker is away for ten minutes
        assertThat(quietOutput.idle).isZero();
        assertThat(busyOutput.idle).isZero();
        assertThat(quietOutput.lastWatermark()).isEqualTo(50_000 - 5_000 - 1);
    }

    @Test
    void aPausedProcessCountsAtMostOneSecondOfItsGap() {
        quiet.onEvent(1L, 50_000, quietOutput);
        run(1, true);
        clock.advanceTime(Duration.ofSeconds(30)); // SIGSTOP: no check runs meanwhile
        busy.onEvent(1L, 60_000, busyOutput); // the first split read after it continues
        run(0.2, true);
        run(7, true);
        assertThat(quietOutput.idle).isZero();
        run(1.4, true);
        assertThat(quietOutput.idle).isEqualTo(1);
    }

    @Test
    void aRecordMakesAnIdleSplitActiveAgain() {
        run(10.4, true);
        assertThat(quietOutput.idle).isEqualTo(1);
        quiet.onEvent(1L, 70_000, quietOutput);
        run(0.2, true);
        assertThat(quietOutput.lastWatermark()).isEqualTo(70_000 - 5_000 - 1);
        run(9.6, true);
        assertThat(quietOutput.idle).isEqualTo(1); // not again before another timeout
        run(0.4, true);
        assertThat(quietOutput.idle).isEqualTo(2);
    }

    /** What a split's output was told. */
    private static final class Output implements WatermarkOutput {
        final List<Long> watermarks = new ArrayList<>();
        int idle;

        @Override
        public void emitWatermark(Watermark watermark) {
            watermarks.add(watermark.getTimestamp());
        }

        @Override
        public void markIdle() {
            idle++;
        }

        @Override
        public void markActive() {}

        long lastWatermark() {
            return watermarks.get(watermarks.size() - 1);
        }
    }
}
