package com.btcmeta.gui.api;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Follows /api/stream on a daemon thread and reconnects after any failure, sending the last seen
 * id as Last-Event-ID so the bridge replays what was missed. State changes ("connected",
 * "reconnecting: ...") go to {@code onState} so the UI can show them.
 */
public class SseClient implements AutoCloseable {
    private final BridgeClient rest;
    private final HttpClient http;
    private final Consumer<SseEvent> onEvent;
    private final Consumer<String> onState;
    private volatile boolean closed;
    private volatile String lastId;
    private volatile InputStream current;
    private final Thread thread;

    public SseClient(BridgeClient rest, Consumer<SseEvent> onEvent, Consumer<String> onState) {
        this.rest = rest;
        this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
        this.onEvent = onEvent;
        this.onState = onState;
        this.thread = new Thread(this::loop, "bridge-sse");
        this.thread.setDaemon(true);
    }

    public SseClient start() {
        thread.start();
        return this;
    }

    public String lastId() {
        return lastId;
    }

    private void loop() {
        long backoff = 500;
        while (!closed) {
            try {
                HttpRequest.Builder b = rest.request(rest.uri("/api/stream", Map.of("namespace", rest.config().namespace())))
                        .timeout(Duration.ofDays(1))
                        .header("Accept", "text/event-stream");
                if (lastId != null) {
                    b.header("Last-Event-ID", lastId);
                }
                HttpResponse<InputStream> resp = http.send(b.GET().build(), HttpResponse.BodyHandlers.ofInputStream());
                if (resp.statusCode() != 200) {
                    String body = new String(resp.body().readAllBytes(), StandardCharsets.UTF_8);
                    BridgeClient.check(resp.statusCode(), body);
                }
                current = resp.body();
                onState.accept("connected");
                backoff = 500;
                SseParser parser = new SseParser(lastId, e -> {
                    lastId = e.id();
                    onEvent.accept(e);
                });
                try (BufferedReader reader = new BufferedReader(new InputStreamReader(resp.body(), StandardCharsets.UTF_8))) {
                    String line;
                    while (!closed && (line = reader.readLine()) != null) {
                        parser.line(line);
                    }
                }
                if (!closed) {
                    onState.accept("reconnecting: stream ended");
                }
            } catch (BridgeException e) {
                onState.accept("stream refused: " + e.userMessage());
                backoff = Math.max(backoff, 5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (Exception e) {
                if (!closed) {
                    onState.accept("reconnecting: " + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()));
                }
            }
            sleep(backoff);
            backoff = Math.min(backoff * 2, 15_000);
        }
    }

    private void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closed = true;
        }
    }

    @Override
    public void close() {
        closed = true;
        InputStream in = current;
        if (in != null) {
            try {
                in.close();
            } catch (Exception ignored) {
                // closing is best effort
            }
        }
        thread.interrupt();
    }
}
