package com.btcmeta.gui.api;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.util.List;
import java.util.Map;

/**
 * The bridge's JSON bodies as records. Unknown fields are ignored on purpose: the bridge may add
 * fields (it is versioned by its OpenAPI spec) without breaking clients already deployed on desks.
 */
public final class Dto {
    private Dto() {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record WhoAmI(String name, String role) {
        public boolean isOperator() {
            return "operator".equals(role);
        }
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ServiceStatus(
            String service, String instance, OffsetDateTime last_seen, double age_s, Double lag_s, boolean stale) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Risk(
            String namespace, boolean kill_switch, String kill_reason, boolean trading_paused, String updated_by) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record StreamStatus(boolean enabled, boolean connected, long last_event_id, String error) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Status(
            String namespace,
            OffsetDateTime server_time,
            List<ServiceStatus> services,
            long decisions_total,
            long degraded_ticks,
            OffsetDateTime last_decision_at,
            String selected_model_id,
            Risk risk,
            StreamStatus stream,
            OffsetDateTime run_clock) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Position(
            String symbol,
            double quantity,
            Double avg_entry_price,
            Double mark_price,
            OffsetDateTime mark_time,
            double unrealized_pnl,
            double realized_pnl) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record PnlDay(LocalDate day, double realized, double unrealized, double fees, double equity) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Pnl(double realized, double unrealized, double total, PnlDay latest_day, List<PnlDay> daily) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Candle(
            OffsetDateTime open_time, double open, double high, double low, double close, double volume, boolean complete) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Candles(String symbol, String timeframe, String source_timeframe, List<Candle> candles) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Fill(String fill_id, String side, double quantity, double price, double fee, OffsetDateTime filled_at) {
        public boolean isBuy() {
            return "buy".equalsIgnoreCase(side);
        }
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Recommendation(
            String strategy, String timeframe, OffsetDateTime bar_close_time, String target, String event, double confidence) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record StrategyRecommendations(String strategy, Recommendation latest, List<Recommendation> recent) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Decision(
            String tick_id,
            String model_id,
            String action,
            double current_exposure,
            double target_exposure,
            boolean degraded,
            OffsetDateTime decided_at) {
        /** The tick this decision was taken on, in the run's (data) time; decided_at is when it was written. */
        public OffsetDateTime tickTime() {
            return Dto.tickTime(tick_id, decided_at);
        }
    }

    /** Time part of a tick id {@code "<symbol>|2022-08-20T00:00Z"}, or {@code fallback} if it has none. */
    public static OffsetDateTime tickTime(String tickId, OffsetDateTime fallback) {
        int bar = tickId == null ? -1 : tickId.lastIndexOf('|');
        if (bar < 0) {
            return fallback;
        }
        try {
            return OffsetDateTime.parse(tickId.substring(bar + 1));
        } catch (RuntimeException e) {
            return fallback;
        }
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ModelEntry(
            Integer rank,
            String model_id,
            String algo,
            boolean selected,
            String selected_by,
            Double score,
            Map<String, Object> metrics) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Leaderboard(
            String metric,
            String window,
            String best_model_id,
            String selected_model_id,
            List<ModelEntry> models,
            List<Baseline> baselines,
            ResearchBoard research) {}

    /**
     * A research run published to the live DB (issue 16): baselines and candidate rules, not tradable.
     * The newest unless the leaderboard was asked for another ({@code research_run}).
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ResearchBoard(String run_id, Integer trials, boolean selected_passes, String verdict, List<ResearchEntry> entries) {}

    /**
     * One published research run as {@code GET /api/research/runs} lists them (newest first): what
     * the run chooser shows so a quant can tell the runs apart before loading one's board.
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ResearchRun(
            String run_id,
            OffsetDateTime published_at,
            Integer trials,
            boolean selected_passes,
            String verdict,
            String ranking_window,
            OffsetDateTime evaluated_from,
            OffsetDateTime evaluated_to) {}

    /** status: baseline, candidate, upper bound, or for "selected": proposed / not proposed. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ResearchEntry(
            Integer rank,
            String name,
            String kind,
            String status,
            boolean proposed,
            String window,
            Double score,
            Map<String, Object> metrics) {}

    /** A rule-based comparison (buy and hold...) evaluated on the same window as the models. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Baseline(String run_id, String name, String window, Map<String, Object> metrics) {}

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ControlResult(
            String action,
            String actor,
            long audit_id,
            Risk risk,
            String selected_model_id,
            String flatten_intent_id,
            String flatten_error) {}
}
