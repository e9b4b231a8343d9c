package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import org.apache.spark.resource.ResourceInformation;

import java.io.Serializable;
import java.util.Map;

/**
 * Where a task runs its model: the CPU, or a GPU by ordinal. {@link #select} turns the user's setting ({@code auto},
 * {@code cpu}, {@code cuda:N}) and the task's Spark resources into a device: with {@code auto}, a task that Spark
 * assigned GPUs ({@code TaskContext.resources().get("gpu")}) uses the first of them, a task without uses the CPU.
 */
public record Device(String kind, int ordinal) implements Serializable {
    public static final Device CPU = new Device("cpu", -1);

    public static Device cuda(int ordinal) {
        return new Device("cuda", ordinal);
    }

    public boolean isGpu() {
        return kind.equals("cuda");
    }

    /** Checks a setting as given by a user: {@code auto}, {@code cpu} or {@code cuda:N}. */
    public static String validateSetting(String setting) {
        if (setting.equals("auto") || setting.equals("cpu") || setting.matches("cuda:\\d+")) {
            return setting;
        }
        throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Unknown device '%s'; use auto, cpu or cuda:N", setting);
    }

    public static Device select(String setting, Map<String, ResourceInformation> resources) {
        return selectAll(setting, resources).get(0);
    }

    /**
     * Every device a task should use: the one named by {@code cpu} or {@code cuda:N}; with {@code auto}, all the GPUs
     * Spark assigned the task (in address order), or the CPU when it assigned none.
     */
    public static java.util.List<Device> selectAll(String setting, Map<String, ResourceInformation> resources) {
        validateSetting(setting);
        if (setting.equals("cpu")) {
            return java.util.List.of(CPU);
        }
        if (setting.startsWith("cuda:")) {
            return java.util.List.of(cuda(Integer.parseInt(setting.substring(5))));
        }
        ResourceInformation gpus = resources == null ? null : resources.get("gpu");
        if (gpus == null || gpus.addresses().length == 0) {
            return java.util.List.of(CPU);
        }
        java.util.List<Device> devices = new java.util.ArrayList<>();
        for (String address : gpus.addresses()) {
            try {
                devices.add(cuda(Integer.parseInt(address.trim())));
            } catch (NumberFormatException e) {
                throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "Spark assigned GPU address '%s', which is not a device ordinal", address);
            }
        }
        return java.util.List.copyOf(devices);
    }

    @Override
    public String toString() {
        return isGpu() ? "cuda:" + ordinal : "cpu";
    }
}
