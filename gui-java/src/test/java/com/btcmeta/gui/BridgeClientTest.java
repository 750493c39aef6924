package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.btcmeta.gui.api.BridgeClient;
import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.api.BridgeException;
import com.btcmeta.gui.api.Dto;
import com.btcmeta.gui.api.SseClient;
import com.btcmeta.gui.api.SseEvent;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class BridgeClientTest {
    static final String STATUS = """
            {"namespace":"demo","server_time":"2026-01-01T00:00:00Z","services":[
              {"service":"executor","instance":"pod-0","last_seen":"2026-01-01T00:00:00Z","age_s":3.5,"lag_s":0.1,
               "stale":false,"info":null,"extra":"ignored"}],
             "decisions_total":10,"degraded_ticks":2,"last_decision_at":null,"selected_model_id":"m1",
             "risk":{"namespace":"demo","kill_switch":true,"kill_reason":"drill","trading_paused":false},
             "stream":{"enabled":true,"connected":true,"last_event_id":4,"buffered":4,"error":null}}""";

    @Test
    void parsesStatusSendsTokenAndNamespace() throws Exception {
        try (FakeBridge fake = new FakeBridge().json("/api/status", STATUS)) {
            BridgeClient c = new BridgeClient(new BridgeConfig(fake.url() + "/", "secret-token", "demo"));
            Dto.Status s = c.status();
            assertEquals(1, s.services().size());
            assertEquals(3.5, s.services().get(0).age_s());
            assertTrue(s.risk().kill_switch());
            assertEquals("Bearer secret-token", fake.requests.get(0).get("authorization"));
            assertEquals("namespace=demo", fake.requests.get(0).get("query"));
        }
    }

    static final String RUNS = """
            [{"run_id":"rsnewer","published_at":"2026-03-02T10:00:00Z","trials":48,"selected_passes":true,
              "verdict":"selected passes every gate","ranking_window":"test",
              "evaluated_from":"2024-01-01T00:00:00Z","evaluated_to":"2025-12-31T20:00:00Z","extra":1},
             {"run_id":"rsolder","published_at":"2026-03-01T10:00:00Z","trials":null,"selected_passes":false,
              "verdict":"selected fails the gates","ranking_window":"test","evaluated_from":null,"evaluated_to":null}]""";

    static String board(String runId, String... names) {
        StringBuilder entries = new StringBuilder();
        for (int i = 0; i < names.length; i++) {
            entries.append(i == 0 ? "" : ",").append("{\"rank\":").append(i + 1).append(",\"name\":\"").append(names[i])
                    .append("\",\"kind\":\"baseline\",\"status\":\"baseline\",\"proposed\":false,\"window\":\"test\",")
                    .append("\"score\":0.5,\"metrics\":{\"sharpe\":0.5}}");
        }
        return "{\"metric\":\"sharpe\",\"window\":\"test\",\"best_model_id\":null,\"selected_model_id\":null,"
                + "\"models\":[],\"baselines\":[],\"research\":{\"run_id\":\"" + runId + "\",\"trials\":1,"
                + "\"selected_passes\":false,\"verdict\":\"v\",\"entries\":[" + entries + "]}}";
    }

    @Test
    void parsesResearchRunsAndAsksForTheChosenRunsBoard() throws Exception {
        try (FakeBridge fake = new FakeBridge().json("/api/research/runs", RUNS).json("/api/models", board("rsolder", "flat"))) {
            BridgeClient c = new BridgeClient(new BridgeConfig(fake.url(), "t", "demo"));
            List<Dto.ResearchRun> runs = c.researchRuns();
            assertEquals(List.of("rsnewer", "rsolder"), runs.stream().map(Dto.ResearchRun::run_id).toList());
            assertEquals(48, runs.get(0).trials());
            assertTrue(runs.get(0).selected_passes());
            assertEquals(2025, runs.get(0).evaluated_to().getYear());
            assertEquals(null, runs.get(1).trials());
            assertEquals(null, runs.get(1).evaluated_from());
            assertEquals("rsolder", c.leaderboard("rsolder").research().run_id());
            assertEquals("research_run=rsolder", fake.requests.get(1).get("query"));
            c.leaderboard();  // the default sends no parameter: an older bridge answers as before
            assertEquals("null", fake.requests.get(2).get("query"));
        }
    }

    @Test
    void aBridgeWithoutTheRunsEndpointMeansNoRunsToChoose() throws Exception {
        try (FakeBridge fake = new FakeBridge()) { // every path: 404
            assertEquals(List.of(), new BridgeClient(new BridgeConfig(fake.url(), "t", null)).researchRuns());
        }
        try (FakeBridge fake = new FakeBridge().fallback(401, "{\"detail\":\"invalid token\"}")) {
            BridgeException e = assertThrows(BridgeException.class,
                    () -> new BridgeClient(new BridgeConfig(fake.url(), "bad", null)).researchRuns());
            assertEquals(BridgeException.Kind.UNAUTHORIZED, e.kind());
        }
    }

    @Test
    void classifiesAuthAndServerErrors() throws Exception {
        try (FakeBridge fake = new FakeBridge().fallback(401, "{\"detail\":\"invalid token\"}")) {
            BridgeClient c = new BridgeClient(new BridgeConfig(fake.url(), "bad", null));
            BridgeException e = assertThrows(BridgeException.class, c::status);
            assertEquals(BridgeException.Kind.UNAUTHORIZED, e.kind());
            assertTrue(e.userMessage().contains("Token rejected"));
        }
        try (FakeBridge fake = new FakeBridge().fallback(403, "{\"detail\":\"operator role required\"}")) {
            BridgeException e = assertThrows(BridgeException.class,
                    () -> new BridgeClient(new BridgeConfig(fake.url(), "v", null)).tripKillSwitch("x"));
            assertEquals(BridgeException.Kind.FORBIDDEN, e.kind());
        }
        try (FakeBridge fake = new FakeBridge().fallback(503, "{\"detail\":\"database unavailable\"}")) {
            BridgeException e = assertThrows(BridgeException.class, () -> new BridgeClient(new BridgeConfig(fake.url(), "t", null)).pnl(3));
            assertEquals(503, e.status());
            assertEquals("database unavailable", e.getMessage());
        }
    }

    @Test
    void unreachableBridgeIsReportedAsSuch() throws Exception {
        String url;
        try (FakeBridge fake = new FakeBridge()) {
            url = fake.url();
        }
        BridgeException e = assertThrows(BridgeException.class, () -> new BridgeClient(new BridgeConfig(url, "t", null)).whoami());
        assertEquals(BridgeException.Kind.UNREACHABLE, e.kind());
        assertTrue(e.userMessage().startsWith("Bridge unreachable"));
    }

    @Test
    void configNeverPrintsTheToken() {
        BridgeConfig c = BridgeConfig.resolve(Map.of("token", "very-secret"), Map.of("BTCMETA_BRIDGE_URL", "http://h:1/"));
        assertEquals("http://h:1", c.url());
        assertTrue(!c.toString().contains("very-secret"));
    }

    @Test
    void sseClientReconnectsWithLastEventId() throws Exception {
        AtomicInteger connections = new AtomicInteger();
        try (FakeBridge fake = new FakeBridge()) {
            fake.handler("/api/stream", ex -> {
                int n = connections.incrementAndGet();
                ex.getResponseHeaders().add("Content-Type", "text/event-stream");
                ex.sendResponseHeaders(200, 0);
                try (OutputStream out = ex.getResponseBody()) {
                    String body = n == 1
                            ? "retry: 10\n\nid: 1\nevent: tick\ndata: {\"n\":1}\n\nid: 2\nevent: intent\ndata: {\"n\":2}\n\n"
                            : "id: 3\nevent: execution\ndata: {\"n\":3}\n\n";
                    out.write(body.getBytes(StandardCharsets.UTF_8));
                }
            });
            List<SseEvent> got = new CopyOnWriteArrayList<>();
            BridgeClient rest = new BridgeClient(new BridgeConfig(fake.url(), "t", "demo"));
            try (SseClient sse = new SseClient(rest, got::add, s -> { }).start()) {
                long deadline = System.currentTimeMillis() + 10_000;
                while (got.size() < 3 && System.currentTimeMillis() < deadline) {
                    Thread.sleep(20);
                }
            }
            assertEquals(List.of("1", "2", "3"), got.stream().map(SseEvent::id).toList());
            List<String> sent = fake.requests.stream().map(r -> r.get("last-event-id")).toList();
            assertEquals("null", sent.get(0));
            assertEquals("2", sent.get(1));
        }
    }
}
