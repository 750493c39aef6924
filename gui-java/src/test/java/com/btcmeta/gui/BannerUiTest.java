package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.ui.MainView;
import javafx.scene.control.Button;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.testfx.util.WaitForAsyncUtils;

/** The client tells the user what is wrong: bridge down, token rejected, view-only token. */
class BannerUiTest {
    private MainView view;

    @AfterEach
    void tearDown() throws Exception {
        UiTestSupport.close(view);
    }

    @Test
    void wrongTokenShowsTokenBanner() throws Exception {
        try (FakeBridge fake = new FakeBridge().fallback(401, "{\"detail\":\"invalid token\"}")) {
            view = UiTestSupport.show(new BridgeConfig(fake.url(), "wrong-token", "live"));
            UiTestSupport.waitFor(15, () -> view.bannerText().contains("Token rejected"));
        }
    }

    @Test
    void bridgeDownShowsUnreachableBanner() throws Exception {
        String url;
        try (FakeBridge fake = new FakeBridge()) {
            url = fake.url();
        }
        view = UiTestSupport.show(new BridgeConfig(url, "any-token", "live"));
        UiTestSupport.waitFor(15, () -> view.bannerText().startsWith("Bridge unreachable"));
    }

    @Test
    void viewerTokenCannotUseOperatorControls() throws Exception {
        try (FakeBridge fake = new FakeBridge()
                .json("/api/whoami", "{\"name\":\"vera\",\"role\":\"viewer\"}")
                .json("/api/status", BridgeClientTest.STATUS)) {
            view = UiTestSupport.show(new BridgeConfig(fake.url(), "viewer-token", "demo"));
            UiTestSupport.waitFor(15, () -> view.statusLoaded() && "vera · viewer".equals(
                    ((javafx.scene.control.Label) view.lookup("#role")).getText()));
            Button kill = WaitForAsyncUtils.asyncFx(() -> (Button) view.lookup("#kill-switch")).get();
            Button select = WaitForAsyncUtils.asyncFx(() -> (Button) view.lookup("#select-model")).get();
            assertTrue(kill.isDisabled());
            assertTrue(select.isDisabled());
            assertFalse(view.isOperator());
        }
    }
}
