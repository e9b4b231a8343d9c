package dev.kiln.spark;

import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** A stand-in GPU backend for tests without GPUs: records the device ordinal it was created for, computes on the CPU. */
public final class RecordingBackend implements Backend {
    static final List<Integer> ORDINALS = new CopyOnWriteArrayList<>();

    public RecordingBackend(int ordinal) {
        ORDINALS.add(ordinal);
    }

    @Override
    public String name() {
        return "recording-cuda";
    }

    @Override
    public LoadedModel load(CompiledModel model) {
        return CpuBackend.INSTANCE.load(model);
    }
}
