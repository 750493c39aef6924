package com.btcmeta.gui.ui;

import com.btcmeta.gui.api.BridgeClient;
import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.api.BridgeException;
import com.btcmeta.gui.api.Dto;
import com.btcmeta.gui.api.SseClient;
import com.btcmeta.gui.api.SseEvent;
import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import javafx.animation.KeyFrame;
import javafx.animation.Timeline;
import javafx.application.Platform;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.collections.FXCollections;
import javafx.collections.ObservableList;
import javafx.concurrent.Task;
import javafx.geometry.Insets;
import javafx.geometry.Pos;
import javafx.scene.control.Alert;
import javafx.scene.control.Button;
import javafx.scene.control.ButtonType;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Label;
import javafx.scene.control.ListCell;
import javafx.scene.control.ListView;
import javafx.scene.control.TableColumn;
import javafx.scene.control.TableRow;
import javafx.scene.control.TableView;
import javafx.scene.control.TextInputDialog;
import javafx.scene.control.Tooltip;
import javafx.scene.control.ToggleButton;
import javafx.scene.control.ToggleGroup;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.Priority;
import javafx.scene.layout.Region;
import javafx.scene.layout.VBox;
import javafx.scene.input.KeyCode;
import javafx.scene.input.KeyCodeCombination;
import javafx.scene.input.KeyCombination;
import javafx.scene.shape.Circle;

/**
 * The whole desk on one screen: health, position and P&L on the left, the candle chart with the
 * system's trades in the middle, the live feed on the right, the leaderboard below the chart, and
 * the kill switch in the header. Every bridge call runs in a background {@link Task}; only the
 * results touch the scene graph, on the FX thread, so the window never freezes while loading.
 *
 * <p>Every view follows the run's own clock ({@code run_clock} of the status response: the newest
 * tick of the namespace), not the wall clock: a replayed demo run lives in 2022 data time, and a
 * window of "the last 24 hours" would show it empty.
 */
public class MainView extends BorderPane {
    private static final int FEED_MAX = 300;
    /** Most bars the chart draws (90 days of 4h bars); beyond that candles get too thin to read. */
    private static final int MAX_CHART_BARS = 540;
    private static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'").withZone(ZoneOffset.UTC);

    private BridgeClient client;
    private SseClient sse;
    private final ExecutorService pool = Executors.newFixedThreadPool(3, r -> {
        Thread t = new Thread(r, "bridge-io");
        t.setDaemon(true);
        return t;
    });
    private final Timeline fastPoll;
    private final Timeline slowPoll;
    private final AtomicInteger generation = new AtomicInteger();
    private final AtomicInteger liveEvents = new AtomicInteger();

    // header
    private final Label namespaceLabel = new Label();
    private final Circle streamDot = new Circle(5);
    private final Label streamLabel = new Label("stream: connecting");
    private final Label runClockLabel = new Label("run time: –");
    private final Label roleLabel = new Label("…");
    private final Button pauseButton = new Button("_Pause trading");
    private final Button killButton = new Button("KILL SWITCH");
    private final Label banner = new Label();
    // left
    private final VBox servicesBox = new VBox(4);
    private final Label decisionsLabel = new Label("—");
    private final Label positionQty = new Label("—");
    private final Label positionDetail = new Label("");
    private final Label fillsLabel = new Label("fills: –");
    private final Label unrealizedLabel = new Label("—");
    private final Label realizedLabel = new Label("—");
    private final Label totalLabel = new Label("—");
    private final PnlBars pnlBars = new PnlBars();
    private final Label riskLabel = new Label("");
    // center
    private final CandleChart chart = new CandleChart();
    private final ToggleGroup timeframes = new ToggleGroup();
    private final TableView<Dto.ModelEntry> leaderboard = new TableView<>();
    private final Button selectButton = new Button("Select for trading");
    private final Label leaderboardLabel = new Label("");
    /** Which published research run's rows the leaderboard shows (filled from GET /api/research/runs). */
    private final ComboBox<Dto.ResearchRun> researchRunBox = new ComboBox<>();
    // right
    private final ObservableList<FeedItem> feed = FXCollections.observableArrayList();

    private Dto.WhoAmI who;
    private Dto.Status lastStatus;
    private Dto.Position lastPosition;
    private Dto.Leaderboard lastBoard;
    private final Set<Dto.ModelEntry> baselineRows = Collections.newSetFromMap(new IdentityHashMap<>());
    /** Research rows (issue 16) and their status (baseline, candidate, proposed, not proposed, upper bound). */
    private final Map<Dto.ModelEntry, String> researchRows = new IdentityHashMap<>();
    /** The research run the user chose; null: follow the newest (a newly published run takes over). */
    private String chosenRun;
    /** True while the chooser's items are replaced by a refresh: not a user's choice. */
    private boolean fillingRuns;
    private volatile OffsetDateTime runClock;
    private volatile boolean runClockKnown;
    private int fillCount = -1;
    private String timeframe = "4h";

    public MainView(BridgeConfig config) {
        getStyleClass().add("main");
        this.client = new BridgeClient(config);
        setTop(header());
        setLeft(left());
        setCenter(center());
        setRight(right());
        fastPoll = new Timeline(new KeyFrame(javafx.util.Duration.seconds(5), e -> refreshFast()));
        fastPoll.setCycleCount(Timeline.INDEFINITE);
        slowPoll = new Timeline(new KeyFrame(javafx.util.Duration.seconds(60), e -> refreshSlow()));
        slowPoll.setCycleCount(Timeline.INDEFINITE);
        namespaceLabel.setText(config.namespace());
    }

    // ------------------------------------------------------------------------------ layout

    private VBox header() {
        Label title = new Label("BTC META");
        title.getStyleClass().add("app-title");
        Label subtitle = new Label("meta-strategy desk");
        subtitle.getStyleClass().add("app-subtitle");
        namespaceLabel.getStyleClass().add("pill");
        namespaceLabel.setId("namespace");
        streamLabel.getStyleClass().add("muted");
        runClockLabel.getStyleClass().add("pill");
        runClockLabel.setId("run-clock");
        runClockLabel.setTooltip(new Tooltip("The run's own clock: its newest tick (data time). Every view is windowed on it."));
        streamDot.getStyleClass().add("dot-unknown");
        roleLabel.getStyleClass().add("pill");
        roleLabel.setId("role");
        Button settings = new Button("_Settings");
        settings.setOnAction(e -> openSettings());
        Button refresh = new Button("_Refresh");
        refresh.setTooltip(new Tooltip("Reload everything (F5)"));
        refresh.setOnAction(e -> refreshAll());
        pauseButton.setId("pause-button");
        pauseButton.setOnAction(e -> togglePause());
        killButton.setId("kill-switch");
        killButton.getStyleClass().add("kill");
        killButton.setOnAction(e -> toggleKillSwitch());
        Region spacer = new Region();
        HBox.setHgrow(spacer, Priority.ALWAYS);
        HBox bar = new HBox(12, title, subtitle, namespaceLabel, runClockLabel, streamDot, streamLabel, spacer, roleLabel, refresh, settings,
                pauseButton, killButton);
        bar.setAlignment(Pos.CENTER_LEFT);
        bar.getStyleClass().add("header");
        banner.setId("banner");
        banner.getStyleClass().add("banner");
        banner.setMaxWidth(Double.MAX_VALUE);
        banner.setWrapText(true);
        showBanner(null);
        return new VBox(bar, banner);
    }

    private VBox left() {
        servicesBox.setId("services");
        GridPane pnlGrid = new GridPane();
        pnlGrid.setHgap(10);
        pnlGrid.setVgap(2);
        pnlGrid.addRow(0, muted("Realized"), realizedLabel);
        pnlGrid.addRow(1, muted("Unrealized"), unrealizedLabel);
        pnlGrid.addRow(2, muted("Total"), totalLabel);
        positionQty.getStyleClass().add("big-number");
        positionQty.setId("position-qty");
        totalLabel.setId("pnl-total");
        positionDetail.getStyleClass().add("muted");
        positionDetail.setWrapText(true);
        fillsLabel.setId("fills-summary");
        fillsLabel.getStyleClass().add("muted");
        fillsLabel.setWrapText(true);
        decisionsLabel.setId("decisions-summary");
        decisionsLabel.getStyleClass().add("muted");
        riskLabel.setId("risk");
        riskLabel.setWrapText(true);
        pnlBars.setPrefHeight(60);
        VBox box = new VBox(10,
                new Card("Position", positionQty, positionDetail, fillsLabel, riskLabel),
                new Card("P&L (USD)", pnlGrid, pnlBars, muted("daily, last 30 days")),
                new Card("Services", servicesBox, decisionsLabel));
        box.setPrefWidth(300);
        box.setMinWidth(260);
        box.setPadding(new Insets(10, 0, 10, 10));
        return box;
    }

    private VBox center() {
        HBox tfBar = new HBox(4);
        tfBar.setAlignment(Pos.CENTER_LEFT);
        tfBar.getChildren().add(muted("Timeframe"));
        for (String tf : List.of("1h", "4h", "1d")) {
            ToggleButton b = new ToggleButton(tf);
            b.setToggleGroup(timeframes);
            b.setUserData(tf);
            b.setSelected(tf.equals(timeframe));
            tfBar.getChildren().add(b);
        }
        timeframes.selectedToggleProperty().addListener((obs, old, now) -> {
            if (now == null) {
                old.setSelected(true);
                return;
            }
            timeframe = (String) now.getUserData();
            loadChart();
        });
        chart.setId("candle-chart");
        VBox.setVgrow(chart, Priority.ALWAYS);
        buildLeaderboard();
        Label runLabel = new Label("Research run");
        runLabel.getStyleClass().add("muted");
        HBox boardBar = new HBox(10, leaderboardLabel, new Region(), runLabel, researchRunBox, selectButton);
        HBox.setHgrow(boardBar.getChildren().get(1), Priority.ALWAYS);
        boardBar.setAlignment(Pos.CENTER_LEFT);
        Card board = new Card("Model leaderboard", boardBar, leaderboard);
        VBox box = new VBox(8, tfBar, chart, board);
        box.setPadding(new Insets(10));
        return box;
    }

    private VBox right() {
        ListView<FeedItem> list = new ListView<>(feed);
        list.setId("feed");
        list.setCellFactory(v -> new ListCell<>() {
            @Override
            protected void updateItem(FeedItem item, boolean empty) {
                super.updateItem(item, empty);
                getStyleClass().removeAll("feed-long", "feed-short", "feed-flat", "feed-decision", "feed-exec", "feed-tick");
                if (empty || item == null) {
                    setText(null);
                    return;
                }
                setText(String.format("%s  %-4s %s", item.time(), item.kind(), item.text()));
                setTooltip(new Tooltip(item.text()));
                getStyleClass().add(item.styleClass());
            }
        });
        VBox.setVgrow(list, Priority.ALWAYS);
        list.setPlaceholder(muted("No events yet"));
        Card card = new Card("Live feed · recommendations, decisions & fills", list);
        VBox.setVgrow(card, Priority.ALWAYS);
        VBox box = new VBox(card);
        box.setPrefWidth(400);
        box.setPadding(new Insets(10, 10, 10, 0));
        return box;
    }

    private void buildLeaderboard() {
        leaderboard.setId("leaderboard");
        leaderboard.setPrefHeight(150);
        leaderboard.setColumnResizePolicy(TableView.CONSTRAINED_RESIZE_POLICY);
        leaderboard.getColumns().add(col("#", m -> m.rank() == null ? "–" : m.rank().toString(), 34));
        leaderboard.getColumns().add(col("Model", Dto.ModelEntry::model_id, 180));
        leaderboard.getColumns().add(col("Algo", m -> m.algo().toUpperCase(Locale.ROOT), 60));
        leaderboard.getColumns().add(col("Sharpe", m -> metric(m, "sharpe", "%.2f"), 70));
        leaderboard.getColumns().add(col("Return", m -> metric(m, "total_return", "%+.1f%%", 100), 75));
        leaderboard.getColumns().add(col("Max DD", m -> metric(m, "max_drawdown", "%.1f%%", 100), 75));
        leaderboard.getColumns().add(col("Win rate", m -> metric(m, "win_rate", "%.0f%%", 100), 70));
        leaderboard.getColumns().add(col("Status", m -> researchRows.containsKey(m) ? "research " + researchRows.get(m)
                : baselineRows.contains(m) ? "baseline" : (m.selected() ? "● LIVE" : "")
                + (lastBoard != null && m.model_id().equals(lastBoard.best_model_id()) ? (m.selected() ? "  ★ best" : "★ best") : ""), 110));
        leaderboard.setPlaceholder(muted("No trained models yet: the live policy is the strategies' fallback vote"));
        leaderboard.setRowFactory(t -> new TableRow<>() {
            @Override
            protected void updateItem(Dto.ModelEntry m, boolean empty) {
                super.updateItem(m, empty);
                getStyleClass().removeAll("best-row", "live-row", "baseline-row");
                setTooltip(null);
                if (!empty && m != null) {
                    setTooltip(new Tooltip(researchRows.containsKey(m)
                            ? "Research " + researchRows.get(m) + ": " + m.model_id() + " (pooled out-of-sample, a rule, not tradable here)"
                            : baselineRows.contains(m) ? "Baseline " + m.model_id() + " (comparison, not tradable)"
                            : m.model_id() + (m.selected() ? " · selected for trading" : "")));
                    if (notTradable(m)) {
                        getStyleClass().add("baseline-row");
                    }
                    if (lastBoard != null && m.model_id().equals(lastBoard.best_model_id())) {
                        getStyleClass().add("best-row");
                    }
                    if (m.selected()) {
                        getStyleClass().add("live-row");
                    }
                }
            }
        });
        leaderboardLabel.getStyleClass().add("muted");
        selectButton.setId("select-model");
        selectButton.setDisable(true);
        leaderboard.getSelectionModel().selectedItemProperty().addListener((o, a, b) -> updateSelectButton());
        selectButton.setOnAction(e -> selectModel());
        buildResearchRunChooser();
    }

    /**
     * The run chooser beside the research rows: newest first, the newest selected by default. Picking
     * the newest means "follow the newest"; picking an older run keeps it on the board across refreshes
     * until it is chosen away or is no longer published.
     */
    private void buildResearchRunChooser() {
        researchRunBox.setId("research-run");
        researchRunBox.setPromptText("none published");
        researchRunBox.setDisable(true);
        researchRunBox.setCellFactory(v -> new ListCell<>() {
            @Override
            protected void updateItem(Dto.ResearchRun r, boolean empty) {
                super.updateItem(r, empty);
                setText(empty || r == null ? null : runText(r));
                setTooltip(empty || r == null ? null : new Tooltip(runTooltip(r)));
            }
        });
        researchRunBox.setButtonCell(researchRunBox.getCellFactory().call(null));
        researchRunBox.getSelectionModel().selectedItemProperty().addListener((o, a, b) -> {
            if (fillingRuns || b == null) {
                return;
            }
            String next = researchRunBox.getItems().indexOf(b) == 0 ? null : b.run_id();
            if (!Objects.equals(next, chosenRun)) {
                chosenRun = next;
                loadLeaderboard();
            }
        });
    }

    private String runText(Dto.ResearchRun r) {
        boolean newest = !researchRunBox.getItems().isEmpty() && researchRunBox.getItems().get(0).equals(r);
        String when = r.published_at() == null ? "?" : r.published_at().withOffsetSameInstant(ZoneOffset.UTC)
                .format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm"));
        return r.run_id().substring(0, Math.min(10, r.run_id().length())) + " · " + when
                + (r.trials() == null ? "" : " · " + r.trials() + " trials")
                + (r.selected_passes() ? " · proposed" : " · not proposed") + (newest ? " (newest)" : "");
    }

    private static String runTooltip(Dto.ResearchRun r) {
        String span = r.evaluated_from() == null || r.evaluated_to() == null ? ""
                : "\nout-of-sample " + r.evaluated_from().toLocalDate() + " .. " + r.evaluated_to().toLocalDate()
                        + " (" + r.ranking_window() + " window)";
        return r.run_id() + span + "\n" + r.verdict();
    }

    private static TableColumn<Dto.ModelEntry, String> col(String name, java.util.function.Function<Dto.ModelEntry, String> f,
            double width) {
        TableColumn<Dto.ModelEntry, String> c = new TableColumn<>(name);
        c.setCellValueFactory(d -> new ReadOnlyObjectWrapper<>(f.apply(d.getValue())));
        c.setPrefWidth(width);
        c.setMinWidth(width * 0.8);
        c.setSortable(false);
        return c;
    }

    private static String metric(Dto.ModelEntry m, String key, String fmt) {
        return metric(m, key, fmt, 1);
    }

    private static String metric(Dto.ModelEntry m, String key, String fmt, double scale) {
        Object v = m.metrics() == null ? null : m.metrics().get(key);
        return v instanceof Number n ? String.format(fmt, n.doubleValue() * scale) : "–";
    }

    private static Label muted(String text) {
        Label l = new Label(text);
        l.getStyleClass().add("muted");
        return l;
    }

    // ------------------------------------------------------------------------------ lifecycle

    /** Load everything once, then poll, and follow the live stream. */
    public void start() {
        if (getScene() != null) {
            getScene().getAccelerators().put(new KeyCodeCombination(KeyCode.F5), this::refreshAll);
            getScene().getAccelerators().put(new KeyCodeCombination(KeyCode.R, KeyCombination.SHORTCUT_DOWN), this::refreshAll);
        }
        refreshAll();
        backfillFeed();
        fastPoll.play();
        slowPoll.play();
        startStream();
    }

    public void close() {
        fastPoll.stop();
        slowPoll.stop();
        if (sse != null) {
            sse.close();
        }
        pool.shutdownNow();
    }

    public void reconnect(BridgeConfig config) {
        generation.incrementAndGet();
        if (sse != null) {
            sse.close();
        }
        client = new BridgeClient(config);
        namespaceLabel.setText(config.namespace());
        feed.clear();
        who = null;
        runClock = null;
        runClockKnown = false;
        fillCount = -1;
        refreshAll();
        backfillFeed();
        startStream();
    }

    private void startStream() {
        int gen = generation.get();
        sse = new SseClient(client, this::onEvent, state -> Platform.runLater(() -> {
            if (gen == generation.get()) {
                setStreamState(state);
            }
        })).start();
    }

    public void refreshAll() {
        refreshFast();
        refreshSlow();
    }

    private void refreshFast() {
        if (who == null) {
            load(client::whoami, w -> {
                who = w;
                roleLabel.setText(w.name() + " · " + w.role());
                updateControls();
            });
        }
        load(client::status, this::showStatus);
        load(client::position, this::showPosition);
        load(() -> client.pnl(30), this::showPnl);
        load(() -> client.fills(null, null), this::showFills);
    }

    private void refreshSlow() {
        loadChart();
        loadLeaderboard();
    }

    private record BoardWithRuns(List<Dto.ResearchRun> runs, Dto.Leaderboard board) {}

    /**
     * The research runs and the leaderboard with the chosen one, in one task: a chosen run that is no
     * longer listed is dropped for the newest before asking, so a withdrawn run never turns into a 404
     * banner.
     */
    private void loadLeaderboard() {
        String wanted = chosenRun;
        load(() -> {
            List<Dto.ResearchRun> runs = client.researchRuns();
            boolean listed = wanted != null && runs.stream().anyMatch(r -> r.run_id().equals(wanted));
            return new BoardWithRuns(runs, client.leaderboard(listed ? wanted : null));
        }, r -> {
            if (!Objects.equals(wanted, chosenRun)) {
                return; // the user chose again meanwhile: that load is in flight and wins
            }
            showResearchRuns(r.runs(), r.board());
            showLeaderboard(r.board());
        });
    }

    private void showResearchRuns(List<Dto.ResearchRun> runs, Dto.Leaderboard b) {
        String shown = b.research() == null ? null : b.research().run_id();
        if (chosenRun != null && !chosenRun.equals(shown)) {
            chosenRun = null; // no longer published: back to following the newest
        }
        fillingRuns = true;
        try {
            researchRunBox.getItems().setAll(runs);
            runs.stream().filter(r -> r.run_id().equals(shown)).findFirst().ifPresentOrElse(
                    r -> researchRunBox.getSelectionModel().select(r), () -> researchRunBox.getSelectionModel().clearSelection());
        } finally {
            fillingRuns = false;
        }
        researchRunBox.setDisable(runs.isEmpty());
    }

    /**
     * Fill the feed with the run's recent history (decisions, recommendations, fills), ordered by
     * the run's clock, so a client connecting to a finished or quiet run still shows what it did.
     * Live events that arrived meanwhile are newer and stay on top.
     */
    private void backfillFeed() {
        record Timed(OffsetDateTime at, FeedItem item) {}
        load(() -> {
            List<Timed> items = new ArrayList<>();
            for (Dto.Decision d : client.decisions(40)) {
                OffsetDateTime at = d.tickTime();
                items.add(new Timed(at, FeedItem.decision(d.action(), d.current_exposure(), d.target_exposure(), d.model_id(),
                        d.degraded(), at == null ? null : at.toString())));
            }
            for (Dto.StrategyRecommendations s : client.recommendations(3)) {
                List<Dto.Recommendation> recs = s.recent() == null || s.recent().isEmpty() ? List.of(s.latest()) : s.recent();
                for (Dto.Recommendation r : recs) {
                    items.add(new Timed(r.bar_close_time(), FeedItem.recommendation(r.strategy(), r.timeframe(), r.target(),
                            r.event(), r.confidence(), r.bar_close_time() == null ? null : r.bar_close_time().toString())));
                }
            }
            for (Dto.Fill f : client.fills(null, null).stream().limit(20).toList()) {
                items.add(new Timed(f.filled_at(), FeedItem.fill(f.side(), f.quantity(), f.price(), f.fee(),
                        f.filled_at() == null ? null : f.filled_at().toString())));
            }
            items.sort(Comparator.comparing(Timed::at, Comparator.nullsLast(Comparator.reverseOrder())));
            return items.stream().limit(FEED_MAX).map(Timed::item).toList();
        }, items -> {
            feed.addAll(items); // after the live events already shown (they are newer)
            if (feed.size() > FEED_MAX) {
                feed.remove(FEED_MAX, feed.size());
            }
        });
    }

    /** The run's clock, asked from the bridge if not known yet (null: the run has no tick yet). */
    private OffsetDateTime runClock() throws BridgeException {
        if (!runClockKnown) {
            runClock = client.status().run_clock();
            runClockKnown = true;
        }
        return runClock;
    }

    /**
     * The chart ends at the run's clock and reaches back far enough to show the run's trades (a
     * replay may have traded weeks before its last tick), within {@link #MAX_CHART_BARS}.
     */
    private void loadChart() {
        String tf = timeframe;
        int minutes = switch (tf) {
            case "1h" -> 60;
            case "4h" -> 240;
            default -> 1440;
        };
        int defaultBars = switch (tf) {
            case "1h" -> 168;
            case "4h" -> 126;
            default -> 60;
        };
        load(() -> {
            OffsetDateTime clock = runClock();
            List<Dto.Fill> all = client.fills(null, null); // newest first
            int bars = defaultBars;
            if (clock != null && !all.isEmpty()) {
                OffsetDateTime oldest = all.get(all.size() - 1).filled_at();
                long span = Duration.between(oldest, clock).toMinutes() / minutes;
                bars = (int) Math.max(defaultBars, Math.min(MAX_CHART_BARS, span + span / 10 + 2));
            }
            Dto.Candles c = client.candles(tf, bars, clock);
            List<Dto.Fill> inView = c.candles().isEmpty() ? List.of()
                    : all.stream().filter(f -> !f.filled_at().isBefore(c.candles().get(0).open_time())).toList();
            return new ChartData(c, inView, all.size());
        }, r -> {
            Dto.Candles c = r.candles();
            Double entry = lastPosition != null && lastPosition.quantity() != 0 ? lastPosition.avg_entry_price() : null;
            String fills = r.fills().size() == r.runFills() ? r.fills().size() + " fills"
                    : r.fills().size() + " of " + r.runFills() + " fills";
            chart.setData(c.symbol() + " · " + c.timeframe() + (c.source_timeframe() == null ? "" : "  (from " + c.source_timeframe()
                    + ")") + " · " + fills, c.candles(), r.fills(), entry);
        });
    }

    private record ChartData(Dto.Candles candles, List<Dto.Fill> fills, int runFills) {}

    /** Run {@code work} off the FX thread; show its result, or its error in the banner. */
    private <T> void load(Callable<T> work, Consumer<T> onSuccess) {
        int gen = generation.get();
        Task<T> task = new Task<>() {
            @Override
            protected T call() throws Exception {
                return work.call();
            }
        };
        task.setOnSucceeded(e -> {
            if (gen == generation.get()) {
                onSuccess.accept(task.getValue());
            }
        });
        task.setOnFailed(e -> {
            if (gen == generation.get()) {
                Throwable ex = task.getException();
                showBanner(ex instanceof BridgeException b ? b.userMessage() : "Unexpected error: " + ex);
            }
        });
        pool.submit(task);
    }

    // ------------------------------------------------------------------------------ rendering

    private void showStatus(Dto.Status s) {
        lastStatus = s;
        showBanner(null);
        OffsetDateTime previous = runClock;
        runClock = s.run_clock();
        runClockKnown = true;
        showRunClock(s);
        if (previous == null ? runClock != null : !previous.equals(runClock)) {
            loadChart(); // the run moved on (or was first seen): re-window the chart on its clock
        }
        servicesBox.getChildren().clear();
        List<String> otherRuns = new ArrayList<>();
        for (Dto.ServiceStatus svc : s.services()) {
            if (ServiceNames.belongsToOtherRun(svc.service(), s.namespace())) {
                otherRuns.add(svc.service());
                continue;
            }
            Circle dot = new Circle(5);
            dot.getStyleClass().add(svc.stale() ? "dot-bad" : "dot-ok");
            Label name = new Label(ServiceNames.display(svc.service(), s.namespace()));
            name.setTooltip(new Tooltip(svc.service() + " @ " + svc.instance()
                    + (svc.last_seen() == null ? "" : "\nlast seen " + CLOCK.format(svc.last_seen()))));
            name.setMinWidth(0);
            name.getStyleClass().add("service-name");
            Label age = muted(ago(svc.age_s()) + (svc.lag_s() == null ? "" : String.format("  lag %.1fs", svc.lag_s())));
            age.setMinWidth(Region.USE_PREF_SIZE);
            Region sp = new Region();
            HBox.setHgrow(sp, Priority.ALWAYS);
            HBox row = new HBox(8, dot, name, sp, age);
            row.setAlignment(Pos.CENTER_LEFT);
            servicesBox.getChildren().add(row);
        }
        if (!otherRuns.isEmpty()) {
            Label others = muted("+ " + otherRuns.size() + " services of other runs");
            others.setTooltip(new Tooltip(String.join("\n", otherRuns)));
            servicesBox.getChildren().add(others);
        }
        if (s.services().isEmpty()) {
            servicesBox.getChildren().add(muted("no heartbeats yet"));
        }
        decisionsLabel.setText(String.format("%,d decisions · %d degraded ticks", s.decisions_total(), s.degraded_ticks()));
        Dto.Risk r = s.risk();
        if (r.kill_switch()) {
            riskLabel.setText("KILL SWITCH TRIPPED" + (r.kill_reason() == null ? "" : ": " + r.kill_reason()));
            riskLabel.getStyleClass().setAll("label", "risk-bad");
        } else if (r.trading_paused()) {
            riskLabel.setText("Trading paused" + (r.updated_by() == null ? "" : " by " + r.updated_by()));
            riskLabel.getStyleClass().setAll("label", "risk-warn");
        } else {
            riskLabel.setText("Trading enabled");
            riskLabel.getStyleClass().setAll("label", "risk-ok");
        }
        updateControls();
    }

    private static String ago(double seconds) {
        if (seconds < 90) {
            return String.format("%.0fs ago", seconds);
        }
        if (seconds < 5400) {
            return String.format("%.0fm ago", seconds / 60);
        }
        return String.format("%.1fh ago", seconds / 3600);
    }

    private void showPosition(Dto.Position p) {
        lastPosition = p;
        String side = p.quantity() > 0 ? "LONG" : p.quantity() < 0 ? "SHORT" : "FLAT";
        positionQty.setText(String.format("%s %.3f BTC", side, Math.abs(p.quantity())));
        positionQty.getStyleClass().removeAll("pos-long", "pos-short");
        if (p.quantity() != 0) {
            positionQty.getStyleClass().add(p.quantity() > 0 ? "pos-long" : "pos-short");
        }
        positionDetail.setText(String.format("%s%nentry %s · mark %s", p.symbol(),
                p.avg_entry_price() == null ? "–" : String.format("%,.1f", p.avg_entry_price()),
                p.mark_price() == null ? "–" : String.format("%,.1f", p.mark_price())));
    }

    private void showPnl(Dto.Pnl p) {
        money(realizedLabel, p.realized());
        money(unrealizedLabel, p.unrealized());
        money(totalLabel, p.total());
        pnlBars.setDays(p.daily());
    }

    private void showRunClock(Dto.Status s) {
        if (s.run_clock() == null) {
            runClockLabel.setText("run time: no tick yet");
            return;
        }
        boolean replay = s.server_time() != null && Duration.between(s.run_clock(), s.server_time()).toHours() > 24;
        runClockLabel.setText((replay ? "replay · " : "run time ") + CLOCK.format(s.run_clock()));
    }

    private void showFills(List<Dto.Fill> fills) {
        fillCount = fills.size();
        if (fills.isEmpty()) {
            fillsLabel.setText("no fills yet");
            return;
        }
        Dto.Fill last = fills.get(0); // newest first
        double fees = fills.stream().mapToDouble(Dto.Fill::fee).sum();
        fillsLabel.setText(String.format("%s%d fills · fees %,.2f%nlast %s %s %.4f @ %,.1f", fills.size() >= 1000 ? "≥ " : "",
                fills.size(), fees, last.filled_at() == null ? "–" : CLOCK.format(last.filled_at()),
                last.side().toUpperCase(Locale.ROOT), last.quantity(), last.price()));
    }

    private static void money(Label l, double v) {
        l.setText(String.format("%+,.2f", v));
        l.getStyleClass().removeAll("gain", "loss");
        l.getStyleClass().add(v >= 0 ? "gain" : "loss");
    }

    private void showLeaderboard(Dto.Leaderboard b) {
        lastBoard = b;
        baselineRows.clear();
        researchRows.clear();
        List<Dto.ModelEntry> rows = new ArrayList<>(b.models());
        for (Dto.Baseline base : b.baselines() == null ? List.<Dto.Baseline>of() : b.baselines()) {
            Dto.ModelEntry row = new Dto.ModelEntry(null, base.name(), "baseline", false, null, null, base.metrics());
            baselineRows.add(row);
            rows.add(row);
        }
        // research rows come ranked by the bridge; their ranks are their own, so the # column stays empty
        Dto.ResearchBoard research = b.research();
        for (Dto.ResearchEntry e : research == null || research.entries() == null ? List.<Dto.ResearchEntry>of() : research.entries()) {
            Dto.ModelEntry row = new Dto.ModelEntry(null, "research · " + e.name(), "research", false, null, e.score(), e.metrics());
            researchRows.put(row, e.status());
            rows.add(row);
        }
        leaderboard.getItems().setAll(rows);
        leaderboard.refresh();
        leaderboardLabel.setText(String.format("ranked by %s on the %s window · best: %s · live: %s · baselines: %d%s", b.metric(),
                b.window(), b.best_model_id() == null ? "–" : b.best_model_id(),
                b.selected_model_id() == null ? "none (fallback vote)" : b.selected_model_id(), baselineRows.size(),
                research == null ? "" : " · research " + research.run_id() + ": " + research.verdict()));
        updateSelectButton();
    }

    private void onEvent(SseEvent e) {
        liveEvents.incrementAndGet();
        FeedItem item;
        try {
            JsonNode data = BridgeClient.JSON.readTree(e.data());
            item = FeedItem.fromEvent(e.type(), data);
        } catch (Exception ex) {
            item = null;
        }
        boolean refresh = "execution".equals(e.type()) || "reset".equals(e.type());
        FeedItem shown = item;
        Platform.runLater(() -> {
            if (shown != null) {
                feed.add(0, shown);
                if (feed.size() > FEED_MAX) {
                    feed.remove(FEED_MAX, feed.size());
                }
            }
            if (refresh) {
                refreshAll();
            }
        });
    }

    private void setStreamState(String state) {
        streamLabel.setText("stream: " + state);
        streamDot.getStyleClass().setAll(state.equals("connected") ? "dot-ok" : "dot-bad");
    }

    void showBanner(String message) {
        banner.setText(message == null ? "" : message);
        banner.setVisible(message != null);
        banner.setManaged(message != null);
    }

    // ------------------------------------------------------------------------------ controls

    private boolean operator() {
        return who != null && who.isOperator();
    }

    private void updateControls() {
        boolean op = operator();
        killButton.setDisable(!op);
        pauseButton.setDisable(!op);
        boolean tripped = lastStatus != null && lastStatus.risk().kill_switch();
        killButton.setText(tripped ? "Reset kill switch" : "KILL SWITCH");
        boolean paused = lastStatus != null && lastStatus.risk().trading_paused();
        pauseButton.setText(paused ? "Resume _trading" : "_Pause trading");
        updateSelectButton();
    }

    private void updateSelectButton() {
        Dto.ModelEntry m = leaderboard.getSelectionModel().getSelectedItem();
        selectButton.setDisable(!operator() || m == null || m.selected() || notTradable(m));
    }

    /** Baselines and research rows are comparisons, not stored models: they cannot be selected. */
    private boolean notTradable(Dto.ModelEntry m) {
        return baselineRows.contains(m) || researchRows.containsKey(m);
    }

    private void toggleKillSwitch() {
        boolean tripped = lastStatus != null && lastStatus.risk().kill_switch();
        TextInputDialog dialog = new TextInputDialog();
        dialog.setTitle(tripped ? "Reset kill switch" : "Trip kill switch");
        dialog.setHeaderText(tripped
                ? "Allow the executor to place orders again in namespace '" + client.config().namespace() + "'?"
                : "Stop ALL trading in namespace '" + client.config().namespace() + "' now?\nThe executor refuses every order until reset.");
        dialog.setContentText("Reason (audited):");
        Button ok = (Button) dialog.getDialogPane().lookupButton(ButtonType.OK);
        ok.setText(tripped ? "Reset" : "Trip kill switch");
        ok.disableProperty().bind(dialog.getEditor().textProperty().isEmpty());
        Optional<String> reason = dialog.showAndWait();
        reason.ifPresent(r -> load(() -> tripped ? client.resetKillSwitch(r) : client.tripKillSwitch(r), res -> {
            info((tripped ? "Kill switch reset" : "Kill switch tripped") + " by " + res.actor() + " (audit #" + res.audit_id() + ")");
            if (!tripped) {
                info(res.flatten_intent_id() != null ? "Flatten intent sent: " + res.flatten_intent_id()
                        : "No flatten intent: " + res.flatten_error() + " (executor flattens on its next intent)");
            }
            refreshFast();
        }));
    }

    private void openSettings() {
        new SettingsDialog(client.config()).showAndWait().ifPresent(this::reconnect);
    }

    private void togglePause() {
        boolean paused = lastStatus != null && lastStatus.risk().trading_paused();
        Alert confirm = new Alert(Alert.AlertType.CONFIRMATION, (paused ? "Resume" : "Pause") + " trading in namespace '"
                + client.config().namespace() + "'?", ButtonType.OK, ButtonType.CANCEL);
        confirm.setHeaderText(null);
        if (confirm.showAndWait().orElse(ButtonType.CANCEL) == ButtonType.OK) {
            load(() -> paused ? client.resumeTrading("from desktop client") : client.pauseTrading("from desktop client"),
                    res -> refreshFast());
        }
    }

    private void selectModel() {
        Dto.ModelEntry m = leaderboard.getSelectionModel().getSelectedItem();
        if (m == null) {
            return;
        }
        Alert confirm = new Alert(Alert.AlertType.CONFIRMATION,
                "Trade live with model " + m.model_id() + " from the next tick?", ButtonType.OK, ButtonType.CANCEL);
        confirm.setHeaderText("Select model");
        if (confirm.showAndWait().orElse(ButtonType.CANCEL) == ButtonType.OK) {
            load(() -> client.selectModel(m.model_id(), "selected in desktop client"), res -> {
                info("Model " + res.selected_model_id() + " selected (audit #" + res.audit_id() + ")");
                loadLeaderboard();
            });
        }
    }

    private void info(String message) {
        feed.add(0, new FeedItem("", "OPS", message, "feed-exec"));
    }

    // ------------------------------------------------------------------------------ test hooks

    public CandleChart chart() {
        return chart;
    }

    public String bannerText() {
        return banner.isVisible() ? banner.getText() : "";
    }

    public int feedSize() {
        return feed.size();
    }

    public int leaderboardSize() {
        return leaderboard.getItems().size();
    }

    /** Baseline rows among {@link #leaderboardSize()}. */
    public int leaderboardBaselineCount() {
        return baselineRows.size();
    }

    /** Research rows (issue 16) among {@link #leaderboardSize()}. */
    public int leaderboardResearchCount() {
        return researchRows.size();
    }

    /** Research run ids in the chooser, as listed (newest first). */
    public List<String> researchRunChoices() {
        return researchRunBox.getItems().stream().map(Dto.ResearchRun::run_id).toList();
    }

    /** The research run whose rows the leaderboard shows, or null. */
    public String leaderboardResearchRun() {
        return lastBoard == null || lastBoard.research() == null ? null : lastBoard.research().run_id();
    }

    /** Choose a research run in the chooser as a user would (FX thread). */
    public void chooseResearchRun(String runId) {
        researchRunBox.getItems().stream().filter(r -> r.run_id().equals(runId)).findFirst()
                .ifPresent(r -> researchRunBox.getSelectionModel().select(r));
    }

    /** Model id of the row marked as selected for trading, or null. */
    public String leaderboardLiveModel() {
        return leaderboard.getItems().stream().filter(m -> m.selected() && !notTradable(m)).map(Dto.ModelEntry::model_id)
                .findFirst().orElse(null);
    }

    /** Fills counted in the position card (-1 before they loaded). */
    public int fillCount() {
        return fillCount;
    }

    public String decisionsText() {
        return decisionsLabel.getText();
    }

    public String pnlTotalText() {
        return totalLabel.getText();
    }

    public String runClockText() {
        return runClockLabel.getText();
    }

    /** The service names as displayed, top to bottom. */
    public List<String> serviceNames() {
        List<String> names = new ArrayList<>();
        servicesBox.lookupAll(".service-name").forEach(n -> names.add(((Label) n).getText()));
        return names;
    }

    public List<FeedItem> feedItems() {
        return List.copyOf(feed);
    }

    public int liveEventCount() {
        return liveEvents.get();
    }

    public boolean statusLoaded() {
        return lastStatus != null;
    }

    public boolean isOperator() {
        return operator();
    }
}
