package com.btcmeta.gui;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;

/** A tiny in-test HTTP server standing in for the bridge: canned answers per path, requests recorded. */
public class FakeBridge implements AutoCloseable {
    public record Answer(int status, String contentType, String body) {}

    public interface Handler {
        void handle(HttpExchange exchange) throws IOException;
    }

    private final HttpServer server;
    private final Map<String, Handler> handlers = new ConcurrentHashMap<>();
    public final List<Map<String, String>> requests = new CopyOnWriteArrayList<>();
    private volatile Answer fallback = new Answer(404, "application/json", "{\"detail\":\"Not Found\"}");

    public FakeBridge() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "fake-bridge");
            t.setDaemon(true);
            return t;
        }));
        server.createContext("/", this::dispatch);
        server.start();
    }

    public String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    public FakeBridge json(String path, String body) {
        handlers.put(path, ex -> send(ex, new Answer(200, "application/json", body)));
        return this;
    }

    public FakeBridge handler(String path, Handler handler) {
        handlers.put(path, handler);
        return this;
    }

    public FakeBridge fallback(int status, String body) {
        fallback = new Answer(status, "application/json", body);
        return this;
    }

    private void dispatch(HttpExchange ex) throws IOException {
        requests.add(Map.of(
                "path", ex.getRequestURI().getPath(),
                "query", String.valueOf(ex.getRequestURI().getQuery()),
                "authorization", String.valueOf(ex.getRequestHeaders().getFirst("Authorization")),
                "last-event-id", String.valueOf(ex.getRequestHeaders().getFirst("Last-Event-ID"))));
        Handler h = handlers.get(ex.getRequestURI().getPath());
        if (h != null) {
            h.handle(ex);
        } else {
            send(ex, fallback);
        }
    }

    public static void send(HttpExchange ex, Answer a) throws IOException {
        byte[] bytes = a.body().getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().add("Content-Type", a.contentType());
        ex.sendResponseHeaders(a.status(), bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
