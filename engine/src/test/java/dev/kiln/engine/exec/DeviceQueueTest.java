package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The device-side pieces that need no GPU: halving the batch on out-of-memory, and many threads feeding one executor
 * through a queue. A CPU executor stands in for the device, wrapped to fail like a full GPU above a row limit. Outputs
 * are checked against y = relu(x W^T + b) with W = [[1, 2], [-1, 0.5]], b = [0.5, -1], computed here by hand.
 */
class DeviceQueueTest {
    private static CompiledModel model;

    @BeforeAll
    static void compile() {
        model = Kiln.compile(HandModel.block(), HandModel.SIGNATURE);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static float[] expected(float[] x, int rows) {
        float[] y = new float[rows * 2];
        for (int r = 0; r < rows; r++) {
            double a = x[2 * r];
            double b = x[2 * r + 1];
            y[2 * r] = (float) Math.max(0, a + 2 * b + 0.5);
            y[2 * r + 1] = (float) Math.max(0, -a + 0.5 * b - 1);
        }
        return y;
    }

    private static float[] input(int rows, long seed) {
        Random random = new Random(seed);
        float[] x = new float[rows * 2];
        for (int i = 0; i < x.length; i++) {
            x[i] = random.nextInt(41) - 20;
        }
        return x;
    }

    /** Delegates to a CPU executor but fails like a full device when asked for more than {@code limit} rows. */
    private static class FullAbove implements Executor {
        private final Executor inner;
        private final int limit;
        final List<Long> batches = java.util.Collections.synchronizedList(new ArrayList<>());
        /** When set, the first run waits for {@link #firstGate} (the device is busy while requests queue up). */
        volatile java.util.concurrent.CountDownLatch gate;
        final java.util.concurrent.CountDownLatch firstGate = new java.util.concurrent.CountDownLatch(1);
        final java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);

        FullAbove(Executor inner, int limit) {
            this.inner = inner;
            this.limit = limit;
        }

        @Override public CompiledModel model() { return inner.model(); }
        @Override public long capacity() { return inner.capacity(); }
        @Override public void setInput(int index, float[] source, int sourceOffset, int batch) { inner.setInput(index, source, sourceOffset, batch); }
        @Override public FloatBuffer inputBuffer(int index) { return inner.inputBuffer(index); }
        @Override public int inputOffset(int index) { return inner.inputOffset(index); }
        @Override public void bindInput(int index, java.nio.ByteBuffer buffer) { inner.bindInput(index, buffer); }
        @Override public void unbindInputs() { inner.unbindInputs(); }
        @Override public void ensureCapacity(long batch) { inner.ensureCapacity(batch); }
        @Override public int getOutput(int index, float[] target, int targetOffset) { return inner.getOutput(index, target, targetOffset); }
        @Override public FloatBuffer outputBuffer(int index) { return inner.outputBuffer(index); }
        @Override public int outputOffset(int index) { return inner.outputOffset(index); }
        @Override public int outputElements(int index) { return inner.outputElements(index); }
        @Override public long arenaBytes() { return inner.arenaBytes(); }
        @Override public void close() { inner.close(); }

        @Override
        public void run(long batch) {
            batches.add(batch);
            started.countDown();
            java.util.concurrent.CountDownLatch g = gate;
            if (g != null) {
                gate = null;
                try {
                    g.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            if (batch > limit) {
                throw KilnException.of(ErrorCode.DEVICE_OUT_OF_MEMORY, "out of memory allocating %d rows", batch);
            }
            inner.run(batch);
        }
    }

    @Test
    void halvesTheBatchOnOutOfMemoryAndKeepsTheSmallerSize() {
        try (FullAbove device = new FullAbove(model.newExecutor(1024), 100)) {
            HalvingRunner runner = new HalvingRunner(device, new int[] {2}, new int[] {2});
            float[] x = input(1000, 1);
            float[] y = new float[2000];
            runner.run(new float[][] {x}, 1000, new float[][] {y});
            assertThat(y).containsExactly(expected(x, 1000));
            // 1000 -> 500 -> 250 -> 125 -> 62 rows: four halvings, then 62-row chunks for the rest (and next calls).
            assertThat(runner.halvings()).isEqualTo(4);
            assertThat(runner.chunk()).isEqualTo(62);
            assertThat(device.batches.subList(0, 5)).containsExactly(1000L, 500L, 250L, 125L, 62L);
            assertThat(device.batches.stream().filter(b -> b <= 100).mapToLong(Long::longValue).sum()).isEqualTo(1000);
        }
    }

    @Test
    void whenGrowingRunsOutOfMemoryTheRowsRunInChunksOfTheCurrentCapacity() {
        // The device executor holds 16 rows and cannot grow: a 50-row request runs as 16 + 16 + 16 + 2, not a failure.
        Executor inner = model.newExecutor(16);
        try (FullAbove device = new FullAbove(inner, Integer.MAX_VALUE) {
            @Override
            public void ensureCapacity(long batch) {
                if (batch > 16) {
                    throw KilnException.of(ErrorCode.DEVICE_OUT_OF_MEMORY, "out of memory growing to %d rows", batch);
                }
            }
        }) {
            HalvingRunner runner = new HalvingRunner(device, new int[] {2}, new int[] {2});
            float[] x = input(50, 8);
            float[] y = new float[100];
            runner.run(new float[][] {x}, 50, new float[][] {y});
            assertThat(y).containsExactly(expected(x, 50));
            assertThat(device.batches).containsExactly(16L, 16L, 16L, 2L);
            assertThat(runner.halvings()).isEqualTo(1);
            assertThat(runner.chunk()).isEqualTo(16);
        }
    }

    @Test
    void growsToTheLargestRequestWhileMemoryHasNeverBeenShort() {
        // The first lease sized the device executor for 4 rows; a 100-row request runs as one batch, not 25.
        try (FullAbove device = new FullAbove(model.newExecutor(4), 1000)) {
            HalvingRunner runner = new HalvingRunner(device, new int[] {2}, new int[] {2});
            float[] x = input(100, 3);
            float[] y = new float[200];
            runner.run(new float[][] {x}, 100, new float[][] {y});
            assertThat(y).containsExactly(expected(x, 100));
            assertThat(device.batches).containsExactly(100L);
            assertThat(runner.chunk()).isEqualTo(100);
        }
    }

    @Test
    void aSingleRowThatDoesNotFitFailsWithTheSizesTried() {
        try (FullAbove device = new FullAbove(model.newExecutor(16), 0)) {
            HalvingRunner runner = new HalvingRunner(device, new int[] {2}, new int[] {2});
            assertThatThrownBy(() -> runner.run(new float[][] {input(5, 2)}, 5, new float[][] {new float[10]}))
                    .isInstanceOf(KilnException.class)
                    .hasMessageContaining("One row does not fit in device memory (batches of 5, 2, 1 rows tried)");
        }
    }

    /**
     * {@code threads} callers each send {@code requests} requests of 1 to {@code maxRows} random rows and check every
     * output against the hand-computed formula.
     */
    private static void callConcurrently(DeviceQueue queue, ExecutorService callers, int threads, int requests, int maxRows, long seed)
            throws Exception {
        List<Callable<Boolean>> work = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int thread = t;
            work.add(() -> {
                Random random = new Random(seed + thread);
                for (int i = 0; i < requests; i++) {
                    int rows = 1 + random.nextInt(maxRows);
                    float[] x = input(rows, thread * 1000L + i);
                    float[] y = new float[rows * 2];
                    queue.run(new float[][] {x}, rows, new float[][] {y});
                    assertThat(y).as("thread %d request %d", thread, i).containsExactly(expected(x, rows));
                }
                return true;
            });
        }
        for (Future<Boolean> f : callers.invokeAll(work)) {
            assertThat(f.get()).isTrue();
        }
    }

    @Test
    void manyThreadsShareOneDeviceThroughTheQueue() throws Exception {
        DeviceQueue queue = new DeviceQueue("cuda:0", new FullAbove(model.newExecutor(256), 200), new int[] {2}, new int[] {2});
        ExecutorService callers = Executors.newFixedThreadPool(8);
        try {
            callConcurrently(queue, callers, 8, 40, 600, 0);
            assertThat(queue.chunk()).isLessThanOrEqualTo(200);
        } finally {
            callers.shutdown();
            queue.close();
        }
        assertThat(queue.workers()).noneMatch(Thread::isAlive);
        assertThatThrownBy(() -> queue.run(new float[][] {new float[2]}, 1, new float[][] {new float[2]}))
                .isInstanceOf(KilnException.class).hasMessageContaining("Device queue cuda:0 is closed");
    }

    @Test
    void requestsThatQueueWhileTheDeviceIsBusyRunAsOneBatchAndEachGetsItsOwnRows() throws Exception {
        FullAbove device = new FullAbove(model.newExecutor(64), Integer.MAX_VALUE);
        device.gate = device.firstGate;
        try (DeviceQueue queue = new DeviceQueue("cuda:0", device, new int[] {2}, new int[] {2})) {
            float[] first = input(7, 99);
            float[] firstOut = new float[14];
            var busy = queue.submit(new float[][] {first}, 7, new float[][] {firstOut});
            device.started.await();
            int[] sizes = {5, 1, 40, 3};
            List<float[]> xs = new ArrayList<>();
            List<float[]> ys = new ArrayList<>();
            List<java.util.concurrent.CompletableFuture<Void>> done = new ArrayList<>();
            for (int k = 0; k < sizes.length; k++) {
                xs.add(input(sizes[k], k));
                ys.add(new float[sizes[k] * 2]);
                done.add(queue.submit(new float[][] {xs.get(k)}, sizes[k], new float[][] {ys.get(k)}));
            }
            // Release the first run: the four waiting requests (49 rows) then go to the device as one batch.
            device.firstGate.countDown();
            queue.await(busy);
            for (var d : done) {
                queue.await(d);
            }
            assertThat(firstOut).containsExactly(expected(first, 7));
            for (int k = 0; k < sizes.length; k++) {
                assertThat(ys.get(k)).as("request %d", k).containsExactly(expected(xs.get(k), sizes[k]));
            }
            assertThat(device.batches).containsExactly(7L, 49L);
        }
    }

    @Test
    void aMalformedRequestInAGroupFailsAloneAndTheOthersAreScored() throws Exception {
        FullAbove device = new FullAbove(model.newExecutor(64), Integer.MAX_VALUE);
        device.gate = device.firstGate;
        try (DeviceQueue queue = new DeviceQueue("cuda:0", device, new int[] {2}, new int[] {2})) {
            var busy = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
            device.started.await();
            float[] a = input(3, 1);
            float[] ya = new float[6];
            float[] c = input(4, 2);
            float[] yc = new float[8];
            var okA = queue.submit(new float[][] {a}, 3, new float[][] {ya});
            var bad = queue.submit(new float[][] {new float[3]}, 2, new float[][] {new float[4]});
            var okC = queue.submit(new float[][] {c}, 4, new float[][] {yc});
            device.firstGate.countDown();
            queue.await(busy);
            queue.await(okA);
            queue.await(okC);
            assertThatThrownBy(() -> queue.await(bad)).isInstanceOf(KilnException.class).hasMessageContaining("needs 4 floats but 3 were given");
            assertThat(ya).containsExactly(expected(a, 3));
            assertThat(yc).containsExactly(expected(c, 4));
        }
    }

    @Test
    void aLargeGroupIsStagedByTheCopyThreadsAndTheyEndWithTheQueue() throws Exception {
        // 3 requests of 50,000 rows x 2 floats = 1.2 MB: above the size at which copies are spread over threads.
        FullAbove device = new FullAbove(model.newExecutor(64), Integer.MAX_VALUE);
        device.gate = device.firstGate;
        List<float[]> xs = new ArrayList<>();
        List<float[]> ys = new ArrayList<>();
        try (DeviceQueue queue = new DeviceQueue("cuda:7", List.of(device), new int[] {2}, new int[] {2}, 1L << 20, 3)) {
            var busy = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
            device.started.await();
            List<java.util.concurrent.CompletableFuture<Void>> done = new ArrayList<>();
            for (int k = 0; k < 3; k++) {
                xs.add(input(50_000, 40 + k));
                ys.add(new float[100_000]);
                done.add(queue.submit(new float[][] {xs.get(k)}, 50_000, new float[][] {ys.get(k)}));
            }
            device.firstGate.countDown();
            queue.await(busy);
            for (var d : done) {
                queue.await(d);
            }
            assertThat(device.batches).containsExactly(1L, 150_000L);
            assertThat(Thread.getAllStackTraces().keySet().stream().map(Thread::getName).filter(t -> t.startsWith("kiln-copy-cuda:7-")))
                    .as("copies of 150,000 rows in pieces of 512 over three threads").hasSize(3);
        }
        for (int k = 0; k < 3; k++) {
            assertThat(ys.get(k)).as("request %d", k).containsExactly(expected(xs.get(k), 50_000));
        }
        assertThat(Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith("kiln-copy-cuda:7-"))).as("copy threads end").isEmpty();
    }

    @Test
    void withTwoExecutorsTheSecondWorkerServesWhileTheFirstIsBusy() throws Exception {
        FullAbove a = new FullAbove(model.newExecutor(64), Integer.MAX_VALUE);
        FullAbove b = new FullAbove(model.newExecutor(64), Integer.MAX_VALUE);
        a.gate = a.firstGate;
        b.gate = b.firstGate;
        DeviceQueue queue = new DeviceQueue("cuda:3", List.of(a, b), new int[] {2}, new int[] {2});
        try {
            var first = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
            while (a.started.getCount() > 0 && b.started.getCount() > 0) {
                Thread.sleep(1);
            }
            // One worker is blocked in its first run; the second request can only go to the other one.
            var second = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
            assertThat(a.started.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
            assertThat(b.started.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
            // Both workers hold a request; release one: the other stays busy while the released one serves the rest.
            FullAbove released = a;
            FullAbove busy = b;
            released.firstGate.countDown();
            for (int k = 0; k < 5; k++) {
                float[] x = input(10, k);
                float[] y = new float[20];
                queue.run(new float[][] {x}, 10, new float[][] {y});
                assertThat(y).as("request %d while the other worker is busy", k).containsExactly(expected(x, 10));
            }
            assertThat(busy.batches).as("the busy executor ran only its first request").hasSize(1);
            busy.firstGate.countDown();
            queue.await(first);
            queue.await(second);
            assertThat(queue.workers()).extracting(Thread::getName).containsExactly("kiln-device-cuda:3", "kiln-device-cuda:3#2");
        } finally {
            a.firstGate.countDown();
            b.firstGate.countDown();
            queue.close();
        }
        assertThat(queue.workers()).noneMatch(Thread::isAlive);
    }

    @Test
    void closeEndsEveryWorkerWhenOneIsBusyAtTheTime() throws Exception {
        // Found on the H200: the first worker to end drained the other's STOP, and close() waited forever.
        FullAbove a = new FullAbove(model.newExecutor(8), Integer.MAX_VALUE);
        FullAbove b = new FullAbove(model.newExecutor(8), Integer.MAX_VALUE);
        a.gate = a.firstGate;
        b.gate = b.firstGate;
        DeviceQueue queue = new DeviceQueue("cuda:5", List.of(a, b), new int[] {2}, new int[] {2});
        var busy = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
        while (a.started.getCount() > 0 && b.started.getCount() > 0) {
            Thread.sleep(1);
        }
        FullAbove running = a.started.getCount() == 0 ? a : b;
        FullAbove idle = running == a ? b : a;
        idle.firstGate.countDown();
        Thread closer = new Thread(queue::close, "closer");
        closer.start();
        // The idle worker takes its STOP and ends while the other is still inside its run.
        Thread idleWorker = queue.workers().get(running == a ? 1 : 0);
        idleWorker.join(10_000);
        assertThat(idleWorker.isAlive()).as("the idle worker ended").isFalse();
        running.firstGate.countDown();
        closer.join(10_000);
        assertThat(closer.isAlive()).as("close() returned").isFalse();
        assertThat(queue.workers()).noneMatch(Thread::isAlive);
        queue.await(busy);
    }

    @Test
    void manyThreadsThroughTwoExecutorsGetTheirOwnRows() throws Exception {
        FullAbove a = new FullAbove(model.newExecutor(128), 300);
        FullAbove b = new FullAbove(model.newExecutor(128), 300);
        ExecutorService callers = Executors.newFixedThreadPool(6);
        try (DeviceQueue queue = new DeviceQueue("cuda:4", List.of(a, b), new int[] {2}, new int[] {2}, 1_000, 2)) {
            callConcurrently(queue, callers, 6, 60, 400, 100);
            assertThat(a.batches).as("first executor used").isNotEmpty();
            assertThat(b.batches).as("second executor used").isNotEmpty();
        } finally {
            callers.shutdown();
        }
    }

    @Test
    void aGroupThatRunsOutOfMemoryMakesLaterGroupsSmallerAndEveryRequestIsScored() throws Exception {
        FullAbove device = new FullAbove(model.newExecutor(256), 100);
        device.gate = device.firstGate;
        try (DeviceQueue queue = new DeviceQueue("cuda:6", device, new int[] {2}, new int[] {2})) {
            var busy = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
            device.started.await();
            List<float[]> xs = new ArrayList<>();
            List<float[]> ys = new ArrayList<>();
            List<java.util.concurrent.CompletableFuture<Void>> done = new ArrayList<>();
            for (int k = 0; k < 3; k++) {
                xs.add(input(60, 60 + k));
                ys.add(new float[120]);
                done.add(queue.submit(new float[][] {xs.get(k)}, 60, new float[][] {ys.get(k)}));
            }
            device.firstGate.countDown();
            queue.await(busy);
            for (var d : done) {
                queue.await(d);
            }
            for (int k = 0; k < 3; k++) {
                assertThat(ys.get(k)).as("request %d", k).containsExactly(expected(xs.get(k), 60));
            }
            // 180 rows together ran out of memory: groups are now at most 90 rows, the three requests ran alone.
            assertThat(device.batches).containsExactly(1L, 180L, 60L, 60L, 60L);
            assertThat(queue.chunk()).isEqualTo(90);
        }
    }

    @Test
    void badRequestsAreRefusedWhenSubmittedAndAStrayInterruptDoesNotStopAWorker() {
        try (DeviceQueue queue = new DeviceQueue("cuda:8", model.newExecutor(4), new int[] {2}, new int[] {2})) {
            assertThatThrownBy(() -> queue.submit(new float[][] {null}, 1, new float[][] {new float[2]}))
                    .isInstanceOf(KilnException.class).hasMessageContaining("none null");
            assertThatThrownBy(() -> queue.submit(new float[][] {new float[2]}, -5, new float[][] {new float[2]}))
                    .isInstanceOf(KilnException.class).hasMessageContaining("-5 rows");
            queue.workers().get(0).interrupt();
            float[] y = new float[2];
            queue.run(new float[][] {new float[] {3, 1}}, 1, new float[][] {y});
            assertThat(y).containsExactly(5.5f, 0f);
            assertThat(queue.workers().get(0).isAlive()).isTrue();
        }
    }

    @Test
    void withGroupsOfOneRowEveryRequestRunsAlone() throws Exception {
        FullAbove device = new FullAbove(model.newExecutor(64), Integer.MAX_VALUE);
        device.gate = device.firstGate;
        try (DeviceQueue queue = new DeviceQueue("cuda:0", device, new int[] {2}, new int[] {2}, 1)) {
            var busy = queue.submit(new float[][] {new float[] {1, 1}}, 1, new float[][] {new float[2]});
            device.started.await();
            float[] y1 = new float[2];
            float[] y2 = new float[2];
            var r1 = queue.submit(new float[][] {new float[] {2, 0}}, 1, new float[][] {y1});
            var r2 = queue.submit(new float[][] {new float[] {0, 2}}, 1, new float[][] {y2});
            device.firstGate.countDown();
            queue.await(busy);
            queue.await(r1);
            queue.await(r2);
            assertThat(y1).containsExactly(2.5f, 0f);    // relu(2 + 0.5), relu(-2 - 1)
            assertThat(y2).containsExactly(4.5f, 0f);    // relu(4 + 0.5), relu(1 - 1)
            assertThat(device.batches).containsExactly(1L, 1L, 1L);
        }
    }

    @Test
    void otherFailuresReachTheCallerUnchanged() {
        try (DeviceQueue queue = new DeviceQueue("cuda:1", model.newExecutor(4), new int[] {2}, new int[] {2})) {
            assertThatThrownBy(() -> queue.run(new float[][] {new float[1]}, 1, new float[][] {new float[2]}))
                    .isInstanceOf(KilnException.class).hasMessageContaining("needs 2 floats but 1 were given");
            // The queue keeps serving after a failed request.
            float[] y = new float[2];
            queue.run(new float[][] {new float[] {3, 1}}, 1, new float[][] {y});
            assertThat(y).containsExactly(5.5f, 0f);
        }
    }
}
