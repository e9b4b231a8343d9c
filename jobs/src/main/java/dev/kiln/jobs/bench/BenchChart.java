package dev.kiln.jobs.bench;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.category.DefaultCategoryDataset;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** Draws bench results as a PNG: rows per second per mode, grouped by batch size and threads, on a log axis. */
public final class BenchChart {
    private BenchChart() {
    }

    public static void write(List<SeedBenchmark.Result> results, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        for (SeedBenchmark.Result r : results) {
            data.addValue(r.rowsPerSecond(), r.mode(), "batch " + r.batch() + ", " + r.threads() + (r.threads() == 1 ? " thread" : " threads"));
        }
        JFreeChart chart = ChartFactory.createBarChart("Seed MLP: eager vs compiled (median rows/s)", null, "rows per second", data,
                PlotOrientation.VERTICAL, true, false, false);
        CategoryPlot plot = chart.getCategoryPlot();
        LogAxis axis = new LogAxis("rows per second (log scale)");
        axis.setBase(10);
        axis.setSmallestValue(100);
        axis.setTickUnit(new org.jfree.chart.axis.NumberTickUnit(1.0));
        axis.setNumberFormatOverride(new java.text.DecimalFormat("#,##0"));
        plot.setRangeAxis(axis);
        ChartUtils.saveChartAsPNG(png.toFile(), chart, 900, 500);
    }
}
