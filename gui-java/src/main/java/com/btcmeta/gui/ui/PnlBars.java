package com.btcmeta.gui.ui;

import com.btcmeta.gui.api.Dto;
import java.util.List;
import javafx.scene.canvas.Canvas;
import javafx.scene.canvas.GraphicsContext;
import javafx.scene.layout.Region;
import javafx.scene.paint.Color;

/** Tiny bar chart of daily P&L changes (equity deltas), green up / red down, for a glance at the trend. */
public class PnlBars extends Region {
    private final Canvas canvas = new Canvas();
    private List<Dto.PnlDay> days = List.of();

    public PnlBars() {
        getChildren().add(canvas);
        setMinHeight(40);
    }

    public void setDays(List<Dto.PnlDay> days) {
        this.days = days == null ? List.of() : List.copyOf(days);
        draw();
    }

    @Override
    protected void layoutChildren() {
        canvas.setWidth(getWidth());
        canvas.setHeight(getHeight());
        draw();
    }

    private void draw() {
        double w = canvas.getWidth();
        double h = canvas.getHeight();
        GraphicsContext g = canvas.getGraphicsContext2D();
        g.clearRect(0, 0, w, h);
        if (days.size() < 2) {
            return;
        }
        double[] delta = new double[days.size() - 1];
        double max = 1e-9;
        for (int i = 1; i < days.size(); i++) {
            delta[i - 1] = days.get(i).equity() - days.get(i - 1).equity();
            max = Math.max(max, Math.abs(delta[i - 1]));
        }
        double mid = h / 2;
        double step = w / delta.length;
        g.setStroke(Color.web("#2b3542"));
        g.strokeLine(0, mid, w, mid);
        for (int i = 0; i < delta.length; i++) {
            double bh = Math.abs(delta[i]) / max * (h / 2 - 2);
            g.setFill(delta[i] >= 0 ? CandleChart.UP : CandleChart.DOWN);
            g.fillRect(i * step + 1, delta[i] >= 0 ? mid - bh : mid, Math.max(1, step - 2), Math.max(1, bh));
        }
    }
}
