package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.ui.MainView;
import java.io.File;
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
 * of the main window to target/gui-main-window.png. Skipped when no bridge URL is given.
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
        BridgeConfig config = new BridgeConfig(url, System.getProperty("bridge.token"), System.getProperty("bridge.namespace"));
        view = UiTestSupport.show(config);
        boolean expectLive = Boolean.getBoolean("bridge.expectLiveEvents");
        UiTestSupport.waitFor(60, () -> view.statusLoaded() && view.chart().candleCount() > 0 && view.chart().markerCount() > 0
                && view.leaderboardSize() > 0 && view.feedSize() > 0 && view.isOperator()
                && (!expectLive || view.liveEventCount() >= 3));
        assertEquals("", view.bannerText());
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
}
