package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.btcmeta.gui.api.BridgeClient;
import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.api.Dto;
import com.btcmeta.gui.ui.FeedItem;
import com.btcmeta.gui.ui.MainView;
import java.io.File;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.concurrent.TimeUnit;
import javafx.embed.swing.SwingFXUtils;
import javafx.scene.control.Button;
import javafx.scene.image.WritableImage;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.testfx.util.WaitForAsyncUtils;

/**
 * Against a RUNNING bridge with real data (started by tests/integration/test_gui_java.py, which
 * passes -Dbridge.url/-Dbridge.token/-Dbridge.namespace): load everything, then save a screenshot
 * of the main window to target/gui-main-window.png. Requires a bridge URL.
 *
 * <p>The seeded run lives in 2022 data time (like {@code make demo}'s), so this also checks that
 * every view follows the run's clock and agrees with what the API says.
 */
class LiveBridgeScreenshotTest {
    private MainView view;

    @AfterEach
    void tearDown() throws Exception {
        UiTestSupport.close(view);
    }

    @Test
    void mainWindowShowsLiveDataAndIsSavedAsScreenshot() throws Exception {
        String url = System.getProperty("bridge.url", "");
        assertFalse(url.isBlank(), "-Dbridge.url is required: run through tests/integration/test_gui_java.py");
        // -Dbridge.* first, then BTCMETA_BRIDGE_* from the environment (how scripts/demo.sh passes the token)
        BridgeConfig config = BridgeConfig.resolve(Map.of(), System.getenv());
        view = UiTestSupport.show(config);
        boolean expectLive = Boolean.getBoolean("bridge.expectLiveEvents");
        boolean demo = Boolean.getBoolean("bridge.demo"); // a real demo run: it may have no trained model
        BridgeClient api = new BridgeClient(config);
        Dto.Status status = api.status();
        List<Dto.Fill> fills = api.fills(null, null);
        Dto.Pnl pnl = api.pnl(30);
        Dto.Leaderboard board = api.leaderboard();
        assertTrue(status.decisions_total() > 0 && !fills.isEmpty() && pnl.total() != 0, "the seeded run is empty");
        assertTrue(status.run_clock() != null && status.run_clock().getYear() < status.server_time().getYear(),
                "the seeded run must live in the past: " + status.run_clock());
        int researchRows = board.research() == null ? 0 : board.research().entries().size();
        int boardRows = board.models().size() + board.baselines().size() + researchRows;
        String decisions = String.format("%,d decisions", status.decisions_total());
        String total = String.format("%+,.2f", pnl.total());
        UiTestSupport.waitFor(60, () -> view.statusLoaded() && view.chart().candleCount() > 0 && view.chart().markerCount() > 0
                && view.leaderboardSize() == boardRows && view.fillCount() == fills.size()
                && view.decisionsText().startsWith(decisions) && total.equals(view.pnlTotalText())
                && hasKinds(view.feedItems(), "DEC", "REC", "FILL") && view.isOperator()
                && (!expectLive || view.liveEventCount() >= 3));
        assertEquals("", view.bannerText());
        // the header shows the run's clock, not today's
        String clockYear = String.valueOf(status.run_clock().withOffsetSameInstant(ZoneOffset.UTC).getYear());
        assertTrue(view.runClockText().contains(clockYear), view.runClockText());
        // the chart is windowed on the run: it ends at the run's clock, and shows its trades
        Dto.Candle lastBar = WaitForAsyncUtils.asyncFx(() -> view.chart().lastCandle()).get();
        assertTrue(!lastBar.open_time().isAfter(status.run_clock()), "chart ends after the run's clock: " + lastBar.open_time());
        // leaderboard: models and baselines, the selected one marked
        assertTrue((demo || !board.baselines().isEmpty()) && view.leaderboardBaselineCount() == board.baselines().size());
        assertEquals(researchRows, view.leaderboardResearchCount());
        assertEquals(board.selected_model_id(), WaitForAsyncUtils.asyncFx(view::leaderboardLiveModel).get());
        // readable service names: the run prefix is gone, other runs' services are folded away
        List<String> names = WaitForAsyncUtils.asyncFx(view::serviceNames).get();
        assertFalse(names.isEmpty());
        for (String name : names) {
            assertFalse(name.startsWith(status.namespace()) || name.contains("demo.r"), "unreadable service name " + name);
            assertTrue(name.length() <= 24, "service name too long: " + name);
        }
        Button kill = WaitForAsyncUtils.asyncFx(() -> (Button) view.lookup("#kill-switch")).get();
        assertTrue(!kill.isDisabled(), "operator token must enable the kill switch");
        Thread.sleep(500); // let the last layout pass settle before the snapshot
        WritableImage image = WaitForAsyncUtils.asyncFx(() -> view.getScene().snapshot(null)).get(20, TimeUnit.SECONDS);
        File dir = new File(System.getProperty("screenshot.dir", "target"));
        dir.mkdirs();
        File png = new File(dir, "gui-main-window.png");
        ImageIO.write(SwingFXUtils.fromFXImage(image, null), "png", png);
        assertTrue(png.length() > 10_000, "screenshot too small: " + png.length());
    }

    private static boolean hasKinds(List<FeedItem> items, String... kinds) {
        Set<String> seen = items.stream().map(FeedItem::kind).collect(Collectors.toSet());
        return seen.containsAll(List.of(kinds));
    }
}
