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

/**
 * Draws bench results as a PNG: rows per second per mode, grouped by batch size and threads, on a log axis (eager and
 * compiled differ by orders of magnitude) or a linear one (peers within a few percent of each other).
 */
public final class BenchChart {
    private BenchChart() {
    }

    public static void write(List<SeedBenchmark.Result> results, Path png, String title, boolean logScale) throws IOException {
        System.setProperty("java.awt.headless", "true");
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        for (SeedBenchmark.Result r : results) {
            data.addValue(r.rowsPerSecond(), r.mode(), "batch " + r.batch() + ", " + r.threads() + (r.threads() == 1 ? " thread" : " threads"));
        }
        JFreeChart chart = ChartFactory.createBarChart(title, null, "rows per second", data,
                PlotOrientation.VERTICAL, true, false, false);
        CategoryPlot plot = chart.getCategoryPlot();
        if (!logScale) {
            ((org.jfree.chart.axis.NumberAxis) plot.getRangeAxis()).setNumberFormatOverride(new java.text.DecimalFormat("#,##0"));
            ChartUtils.saveChartAsPNG(png.toFile(), chart, 900, 500);
            return;
        }
        LogAxis axis = new LogAxis("rows per second (log scale)");
        axis.setBase(10);
        axis.setSmallestValue(100);
        axis.setTickUnit(new org.jfree.chart.axis.NumberTickUnit(1.0));
        axis.setNumberFormatOverride(new java.text.DecimalFormat("#,##0"));
        plot.setRangeAxis(axis);
        ChartUtils.saveChartAsPNG(png.toFile(), chart, 900, 500);
    }
}
