package com.btcmeta.gui.ui;

import com.btcmeta.gui.api.Dto;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import javafx.geometry.VPos;
import javafx.scene.canvas.Canvas;
import javafx.scene.canvas.GraphicsContext;
import javafx.scene.layout.Region;
import javafx.scene.paint.Color;
import javafx.scene.text.Font;
import javafx.scene.text.TextAlignment;

/**
 * Candlestick chart drawn on a Canvas (JavaFX charts have no OHLC series), with the system's fills
 * overlaid: green up-triangles below the bar for buys, red down-triangles above it for sells, and a
 * dashed line at the current position's entry price.
 */
public class CandleChart extends Region {
    static final Color BG = Color.web("#11161d");
    static final Color GRID = Color.web("#222b36");
    static final Color AXIS_TEXT = Color.web("#8b98a9");
    static final Color UP = Color.web("#26a69a");
    static final Color DOWN = Color.web("#ef5350");
    static final Color BUY = Color.web("#4caf50");
    static final Color SELL = Color.web("#ff7043");
    private static final double RIGHT_AXIS = 72;
    private static final double BOTTOM_AXIS = 24;
    private static final double TOP = 28;
    private static final DateTimeFormatter DAY = DateTimeFormatter.ofPattern("MMM d").withZone(ZoneOffset.UTC);
    private static final DateTimeFormatter HOUR = DateTimeFormatter.ofPattern("MMM d HH:mm").withZone(ZoneOffset.UTC);

    private final Canvas canvas = new Canvas();
    private List<Dto.Candle> candles = List.of();
    private List<Dto.Fill> fills = List.of();
    private Double entryPrice;
    private String title = "";

    public CandleChart() {
        getChildren().add(canvas);
        setMinSize(300, 200);
        getStyleClass().add("candle-chart");
    }

    public void setData(String title, List<Dto.Candle> candles, List<Dto.Fill> fills, Double entryPrice) {
        this.title = title;
        this.candles = candles == null ? List.of() : List.copyOf(candles);
        this.fills = fills == null ? List.of() : List.copyOf(fills);
        this.entryPrice = entryPrice;
        draw();
    }

    public int candleCount() {
        return candles.size();
    }

    /** The newest bar drawn, or null when empty. */
    public Dto.Candle lastCandle() {
        return candles.isEmpty() ? null : candles.get(candles.size() - 1);
    }

    public int markerCount() {
        return (int) fills.stream().filter(f -> indexOf(f.filled_at()) >= 0).count();
    }

    @Override
    protected void layoutChildren() {
        canvas.setWidth(getWidth());
        canvas.setHeight(getHeight());
        draw();
    }

    private int indexOf(OffsetDateTime t) {
        if (candles.isEmpty() || t == null) {
            return -1;
        }
        Duration bar = candles.size() > 1
                ? Duration.between(candles.get(0).open_time(), candles.get(1).open_time())
                : Duration.ofHours(1);
        for (int i = candles.size() - 1; i >= 0; i--) {
            OffsetDateTime open = candles.get(i).open_time();
            if (!t.isBefore(open) && t.isBefore(open.plus(bar))) {
                return i;
            }
        }
        return -1;
    }

    private void draw() {
        double w = canvas.getWidth();
        double h = canvas.getHeight();
        GraphicsContext g = canvas.getGraphicsContext2D();
        g.setFill(BG);
        g.fillRect(0, 0, w, h);
        g.setFont(Font.font("System", 11));
        if (candles.isEmpty() || w < 50 || h < 50) {
            g.setFill(AXIS_TEXT);
            g.setTextAlign(TextAlignment.CENTER);
            g.fillText("No candles yet", w / 2, h / 2);
            return;
        }
        double lo = Double.MAX_VALUE;
        double hi = -Double.MAX_VALUE;
        for (Dto.Candle c : candles) {
            lo = Math.min(lo, c.low());
            hi = Math.max(hi, c.high());
        }
        double pad = (hi - lo) * 0.06 + 1e-9;
        lo -= pad;
        hi += pad;
        double plotW = w - RIGHT_AXIS;
        double plotH = h - BOTTOM_AXIS - TOP;
        double step = plotW / candles.size();
        final double low = lo;
        final double range = hi - lo;
        java.util.function.DoubleUnaryOperator y = p -> TOP + (1 - (p - low) / range) * plotH;

        // grid + price axis
        g.setTextAlign(TextAlignment.LEFT);
        g.setTextBaseline(VPos.CENTER);
        for (double p : niceTicks(lo, hi, 6)) {
            double yy = Math.round(y.applyAsDouble(p)) + 0.5;
            g.setStroke(GRID);
            g.setLineWidth(1);
            g.strokeLine(0, yy, plotW, yy);
            g.setFill(AXIS_TEXT);
            g.fillText(String.format("%,.0f", p), plotW + 6, yy);
        }
        // time axis
        g.setTextAlign(TextAlignment.CENTER);
        g.setTextBaseline(VPos.TOP);
        int every = Math.max(1, (int) Math.ceil(90 / step));
        boolean intraday = candles.size() > 1
                && Duration.between(candles.get(0).open_time(), candles.get(1).open_time()).toHours() < 4;
        for (int i = every / 2; i < candles.size(); i += every) {
            double x = i * step + step / 2;
            g.setStroke(GRID);
            g.strokeLine(x, TOP, x, TOP + plotH);
            g.setFill(AXIS_TEXT);
            g.fillText((intraday ? HOUR : DAY).format(candles.get(i).open_time()), x, TOP + plotH + 5);
        }
        // a faint vertical guide per fill, so its bar is easy to find among the neighbours
        for (Dto.Fill f : fills) {
            int i = indexOf(f.filled_at());
            if (i >= 0) {
                double x = i * step + step / 2;
                g.setStroke(Color.web(f.isBuy() ? "#4caf5030" : "#ff704330"));
                g.setLineWidth(Math.max(1, Math.min(3, step * 0.5)));
                g.strokeLine(x, TOP, x, TOP + plotH);
            }
        }
        g.setLineWidth(1);
        // candles
        double body = Math.max(1, step * 0.7);
        for (int i = 0; i < candles.size(); i++) {
            Dto.Candle c = candles.get(i);
            double x = i * step + step / 2;
            Color col = c.close() >= c.open() ? UP : DOWN;
            g.setStroke(col);
            g.setFill(col);
            g.setLineWidth(1);
            g.strokeLine(x, y.applyAsDouble(c.high()), x, y.applyAsDouble(c.low()));
            double top = y.applyAsDouble(Math.max(c.open(), c.close()));
            double bottom = y.applyAsDouble(Math.min(c.open(), c.close()));
            g.fillRect(x - body / 2, top, body, Math.max(1, bottom - top));
        }
        // entry line
        if (entryPrice != null && entryPrice > lo && entryPrice < hi) {
            double yy = y.applyAsDouble(entryPrice);
            g.setStroke(Color.web("#ffca28"));
            g.setLineDashes(6, 4);
            g.strokeLine(0, yy, plotW, yy);
            g.setLineDashes(null);
            label(g, plotW, yy, String.format("%,.0f", entryPrice), Color.web("#ffca28"));
            g.setFill(Color.web("#ffca28"));
            g.setTextBaseline(VPos.BOTTOM);
            g.fillText("position entry", 6, yy - 3);
        }
        // last price
        Dto.Candle last = candles.get(candles.size() - 1);
        double ly = y.applyAsDouble(last.close());
        label(g, plotW, ly, String.format("%,.0f", last.close()), last.close() >= last.open() ? UP : DOWN);
        // trades
        double size = Math.max(7, Math.min(11, step * 1.2));
        for (Dto.Fill f : fills) {
            int i = indexOf(f.filled_at());
            if (i < 0) {
                continue;
            }
            double x = i * step + step / 2;
            Dto.Candle c = candles.get(i);
            if (f.isBuy()) {
                double yy = y.applyAsDouble(c.low()) + 3;
                triangle(g, x, yy, size, true, BUY);
            } else {
                double yy = y.applyAsDouble(c.high()) - 3;
                triangle(g, x, yy, size, false, SELL);
            }

        }
        // title + legend
        g.setTextAlign(TextAlignment.LEFT);
        g.setTextBaseline(VPos.CENTER);
        g.setFont(Font.font("System", javafx.scene.text.FontWeight.BOLD, 13));
        g.setFill(Color.web("#e6edf3"));
        g.fillText(title, 10, 14);
        g.setFont(Font.font("System", 11));
        double lx = plotW - 190;
        triangle(g, lx, 10, 8, true, BUY);
        g.setFill(AXIS_TEXT);
        g.fillText("buy fill", lx + 9, 14);
        triangle(g, lx + 70, 18, 8, false, SELL);
        g.fillText("sell fill", lx + 79, 14);
    }

    private static void label(GraphicsContext g, double x, double y, String text, Color color) {
        g.setFill(color);
        g.fillRect(x, y - 8, RIGHT_AXIS, 16);
        g.setFill(Color.web("#0b0f14"));
        g.setTextAlign(TextAlignment.LEFT);
        g.setTextBaseline(VPos.CENTER);
        g.fillText(text, x + 4, y);
    }

    private static void triangle(GraphicsContext g, double x, double tipY, double s, boolean up, Color c) {
        g.setFill(c);
        double base = up ? tipY + s : tipY - s;
        g.fillPolygon(new double[] {x, x - s * 0.7, x + s * 0.7}, new double[] {tipY, base, base}, 3);
    }

    static List<Double> niceTicks(double lo, double hi, int target) {
        double raw = (hi - lo) / target;
        double mag = Math.pow(10, Math.floor(Math.log10(raw)));
        double norm = raw / mag;
        double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
        List<Double> ticks = new ArrayList<>();
        for (double v = Math.ceil(lo / step) * step; v <= hi; v += step) {
            ticks.add(v);
        }
        return ticks;
    }
}
