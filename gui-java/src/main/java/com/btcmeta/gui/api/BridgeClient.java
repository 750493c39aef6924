package com.btcmeta.gui.api;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;

/**
 * Blocking REST client of the bridge (java.net.http + Jackson). Call it from background tasks only:
 * every method may wait for the network.
 */
public class BridgeClient {
    public static final ObjectMapper JSON = new ObjectMapper()
            .registerModule(new JavaTimeModule())
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private final BridgeConfig config;
    private final HttpClient http;

    public BridgeClient(BridgeConfig config) {
        this(config, HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build());
    }

    public BridgeClient(BridgeConfig config, HttpClient http) {
        this.config = config;
        this.http = http;
    }

    public BridgeConfig config() {
        return config;
    }

    public Dto.WhoAmI whoami() throws BridgeException {
        return get("/api/whoami", Map.of(), Dto.WhoAmI.class);
    }

    public Dto.Status status() throws BridgeException {
        return get("/api/status", ns(), Dto.Status.class);
    }

    public Dto.Position position() throws BridgeException {
        return get("/api/position", ns(), Dto.Position.class);
    }

    public Dto.Pnl pnl(int days) throws BridgeException {
        return get("/api/pnl", ns("days", String.valueOf(days)), Dto.Pnl.class);
    }

    public Dto.Candles candles(String timeframe, int limit) throws BridgeException {
        return candles(timeframe, limit, null);
    }

    /** The {@code limit} bars before {@code end} (exclusive; null: up to the newest candle). */
    public Dto.Candles candles(String timeframe, int limit, OffsetDateTime end) throws BridgeException {
        Map<String, String> q = new LinkedHashMap<>();
        q.put("timeframe", timeframe);
        q.put("limit", String.valueOf(limit));
        if (end != null) {
            q.put("end", end.toString());
        }
        return get("/api/candles", q, Dto.Candles.class);
    }

    public List<Dto.Fill> fills(OffsetDateTime since, OffsetDateTime until) throws BridgeException {
        Map<String, String> q = ns("limit", "1000");
        if (since != null) {
            q.put("since", since.toString());
        }
        if (until != null) {
            q.put("until", until.toString());
        }
        return get("/api/fills", q, new TypeReference<>() {});
    }

    public List<Dto.StrategyRecommendations> recommendations() throws BridgeException {
        return recommendations(1);
    }

    public List<Dto.StrategyRecommendations> recommendations(int perStrategy) throws BridgeException {
        return get("/api/recommendations", ns("per_strategy", String.valueOf(perStrategy)), new TypeReference<>() {});
    }

    public List<Dto.Decision> decisions(int limit) throws BridgeException {
        return get("/api/decisions", ns("limit", String.valueOf(limit)), new TypeReference<>() {});
    }

    public Dto.Leaderboard leaderboard() throws BridgeException {
        return leaderboard(null);
    }

    /**
     * The leaderboard with research run {@code researchRun}'s board beside the models (null: the
     * newest, and no query parameter at all, so a bridge older than the chooser answers as before).
     */
    public Dto.Leaderboard leaderboard(String researchRun) throws BridgeException {
        return get("/api/models", researchRun == null ? Map.of() : Map.of("research_run", researchRun), Dto.Leaderboard.class);
    }

    /**
     * Published research runs, newest first. A bridge older than the endpoint answers 404: that is
     * read as "no runs to choose from" so the leaderboard still loads (the newest run, as before).
     */
    public List<Dto.ResearchRun> researchRuns() throws BridgeException {
        try {
            return get("/api/research/runs", Map.of(), new TypeReference<>() {});
        } catch (BridgeException e) {
            if (e.kind() == BridgeException.Kind.SERVER && e.status() == 404) {
                return List.of();
            }
            throw e;
        }
    }

    public Dto.ControlResult tripKillSwitch(String reason) throws BridgeException {
        return post("/api/control/kill-switch/trip", Map.of("reason", reason));
    }

    public Dto.ControlResult resetKillSwitch(String reason) throws BridgeException {
        return post("/api/control/kill-switch/reset", Map.of("reason", reason));
    }

    public Dto.ControlResult pauseTrading(String reason) throws BridgeException {
        return post("/api/control/trading/pause", Map.of("reason", reason));
    }

    public Dto.ControlResult resumeTrading(String reason) throws BridgeException {
        return post("/api/control/trading/resume", Map.of("reason", reason));
    }

    public Dto.ControlResult selectModel(String modelId, String reason) throws BridgeException {
        String path = "/api/control/models/" + URLEncoder.encode(modelId, StandardCharsets.UTF_8).replace("+", "%20")
                + "/select";
        return post(path, Map.of("reason", reason));
    }

    // ------------------------------------------------------------------------------------------

    private Map<String, String> ns(String... pairs) {
        Map<String, String> q = new LinkedHashMap<>();
        q.put("namespace", config.namespace());
        for (int i = 0; i + 1 < pairs.length; i += 2) {
            q.put(pairs[i], pairs[i + 1]);
        }
        return q;
    }

    URI uri(String path, Map<String, String> query) {
        StringJoiner qs = new StringJoiner("&");
        query.forEach((k, v) -> qs.add(k + "=" + URLEncoder.encode(v, StandardCharsets.UTF_8)));
        return URI.create(config.url() + path + (query.isEmpty() ? "" : "?" + qs));
    }

    HttpRequest.Builder request(URI uri) {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(15)).header("Accept", "application/json");
        if (!config.token().isEmpty()) {
            b.header("Authorization", "Bearer " + config.token());
        }
        return b;
    }

    private <T> T get(String path, Map<String, String> query, Class<T> type) throws BridgeException {
        return parse(send(request(uri(path, query)).GET().build()), type);
    }

    private <T> T get(String path, Map<String, String> query, TypeReference<T> type) throws BridgeException {
        String body = send(request(uri(path, query)).GET().build());
        try {
            return JSON.readValue(body, type);
        } catch (IOException e) {
            throw new BridgeException(BridgeException.Kind.BAD_RESPONSE, 200, e.getMessage(), e);
        }
    }

    private Dto.ControlResult post(String path, Map<String, String> body) throws BridgeException {
        try {
            String json = JSON.writeValueAsString(body);
            HttpRequest req = request(uri(path, ns()))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(json))
                    .build();
            return parse(send(req), Dto.ControlResult.class);
        } catch (IOException e) {
            throw new BridgeException(BridgeException.Kind.BAD_RESPONSE, 0, e.getMessage(), e);
        }
    }

    private <T> T parse(String body, Class<T> type) throws BridgeException {
        try {
            return JSON.readValue(body, type);
        } catch (IOException e) {
            throw new BridgeException(BridgeException.Kind.BAD_RESPONSE, 200, e.getMessage(), e);
        }
    }

    private String send(HttpRequest req) throws BridgeException {
        HttpResponse<String> resp;
        try {
            resp = http.send(req, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            throw new BridgeException(BridgeException.Kind.UNREACHABLE, 0, config.url() + " (" + why + ")", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new BridgeException(BridgeException.Kind.UNREACHABLE, 0, "interrupted", e);
        }
        return check(resp.statusCode(), resp.body());
    }

    static String check(int status, String body) throws BridgeException {
        if (status >= 200 && status < 300) {
            return body;
        }
        String detail = detail(body);
        if (status == 401) {
            throw new BridgeException(BridgeException.Kind.UNAUTHORIZED, status, detail, null);
        }
        if (status == 403) {
            throw new BridgeException(BridgeException.Kind.FORBIDDEN, status, detail, null);
        }
        throw new BridgeException(BridgeException.Kind.SERVER, status, detail, null);
    }

    private static String detail(String body) {
        try {
            JsonNode node = JSON.readTree(body);
            JsonNode d = node.get("detail");
            return d == null ? body : (d.isTextual() ? d.asText() : d.toString());
        } catch (IOException | RuntimeException e) {
            return body == null ? "" : body.substring(0, Math.min(body.length(), 200));
        }
    }
}
