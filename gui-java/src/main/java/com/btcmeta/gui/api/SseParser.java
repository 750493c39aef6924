package com.btcmeta.gui.api;

import java.util.function.Consumer;

/**
 * Incremental parser of the text/event-stream format (fed line by line). Kept free of I/O so the
 * framing rules (comments, multi-line data, default type "message", id persistence) are unit-tested.
 */
public class SseParser {
    private final Consumer<SseEvent> sink;
    private final StringBuilder data = new StringBuilder();
    private String type = "";
    private String lastId;
    private boolean hasData;
    private Long retryMillis;

    public SseParser(String lastId, Consumer<SseEvent> sink) {
        this.lastId = lastId;
        this.sink = sink;
    }

    /** The id of the last event seen (what a reconnect sends as Last-Event-ID). */
    public String lastId() {
        return lastId;
    }

    public Long retryMillis() {
        return retryMillis;
    }

    public void line(String line) {
        if (line.isEmpty()) {
            dispatch();
            return;
        }
        if (line.startsWith(":")) {
            return; // comment / keep-alive
        }
        int colon = line.indexOf(':');
        String field = colon < 0 ? line : line.substring(0, colon);
        String value = colon < 0 ? "" : line.substring(colon + 1);
        if (value.startsWith(" ")) {
            value = value.substring(1);
        }
        switch (field) {
            case "event" -> type = value;
            case "data" -> {
                if (hasData) {
                    data.append('\n');
                }
                data.append(value);
                hasData = true;
            }
            case "id" -> {
                if (!value.contains("\0")) {
                    lastId = value;
                }
            }
            case "retry" -> {
                try {
                    retryMillis = Long.parseLong(value.trim());
                } catch (NumberFormatException ignored) {
                    // the spec says: ignore the field
                }
            }
            default -> { }
        }
    }

    private void dispatch() {
        if (hasData) {
            sink.accept(new SseEvent(lastId, type.isEmpty() ? "message" : type, data.toString()));
        }
        data.setLength(0);
        hasData = false;
        type = "";
    }
}
