package com.btcmeta.gui.ui;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/** One line of the live feed, already phrased for a trader (built from SSE events or REST rows). */
public record FeedItem(String time, String kind, String text, String styleClass) {
    private static final DateTimeFormatter HM = DateTimeFormatter.ofPattern("MM-dd HH:mm").withZone(ZoneOffset.UTC);

    static String time(String iso) {
        if (iso == null || iso.isEmpty()) {
            return "";
        }
        try {
            return HM.format(OffsetDateTime.parse(iso));
        } catch (RuntimeException e) {
            return iso;
        }
    }

    static String targetStyle(String target) {
        return switch (target == null ? "" : target) {
            case "LONG" -> "feed-long";
            case "SHORT" -> "feed-short";
            default -> "feed-flat";
        };
    }

    public static FeedItem recommendation(String strategy, String timeframe, String target, String event, double conf, String at) {
        String ev = event == null || "NONE".equals(event) ? "" : "  " + event;
        return new FeedItem(time(at), "REC", String.format("%-17s %s %-5s %3.0f%%%s", strategy, timeframe, target, conf * 100, ev),
                targetStyle(target));
    }

    public static FeedItem decision(String action, double from, double to, String model, boolean degraded, String at) {
        String text = String.format("%-8s %+.2f→%+.2f  %s%s", action, from, to, model, degraded ? "  ⚠ degraded" : "");
        return new FeedItem(time(at), "DEC", text, "HOLD".equals(action) ? "feed-flat" : "feed-decision");
    }

    public static FeedItem fill(String side, double qty, double price, double fee, String at) {
        String text = String.format("%-4s %.4f @ %,.1f  fee %.2f", side == null ? "" : side.toUpperCase(java.util.Locale.ROOT), qty, price, fee);
        return new FeedItem(time(at), "FILL", text, "feed-exec");
    }

    /** Translate one SSE event (type + JSON data) into a feed line; null for types not shown. */
    public static FeedItem fromEvent(String type, JsonNode d) {
        switch (type) {
            case "recommendation":
                return recommendation(d.path("strategy").asText(), d.path("timeframe").asText(), d.path("target").asText(),
                        d.path("event").asText(), d.path("confidence").asDouble(), d.path("bar_close_time").asText());
            case "intent":
                return decision(d.path("action").asText(), d.path("current_exposure").asDouble(),
                        d.path("target_exposure").asDouble(), d.path("model_id").asText(), d.path("degraded").asBoolean(),
                        d.path("created_at").asText());
            case "execution": {
                StringBuilder sb = new StringBuilder(d.path("status").asText());
                for (JsonNode o : d.path("orders")) {
                    sb.append(String.format("  %s %.4f @ %,.1f", o.path("side").asText(), o.path("quantity").asDouble(),
                            o.path("price").asDouble()));
                }
                sb.append(String.format("  → pos %.4f", d.path("position_after").asDouble()));
                return new FeedItem(time(d.path("reported_at").asText()), "EXE", sb.toString(), "feed-exec");
            }
            case "tick":
                return new FeedItem(time(d.path("tick_time").asText()), "TICK",
                        d.path("due_strategies").size() + " strategies due " + d.path("due_timeframes"), "feed-tick");
            default:
                return null;
        }
    }
}
