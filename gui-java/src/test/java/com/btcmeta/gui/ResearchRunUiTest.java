package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.ui.MainView;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.testfx.util.WaitForAsyncUtils;

/** The research run chooser: newest by default, an older run's rows on demand, the newest again. */
class ResearchRunUiTest {
    private MainView view;

    @AfterEach
    void tearDown() throws Exception {
        UiTestSupport.close(view);
    }

    @Test
    void choosingAnOlderRunReloadsTheLeaderboardWithItsRows() throws Exception {
        try (FakeBridge fake = new FakeBridge()
                .json("/api/whoami", "{\"name\":\"vera\",\"role\":\"viewer\"}")
                .json("/api/status", BridgeClientTest.STATUS)
                .json("/api/research/runs", BridgeClientTest.RUNS)) {
            // the bridge's answer follows the query: the older run has three rows, the newest one
            fake.handler("/api/models", ex -> {
                String q = String.valueOf(ex.getRequestURI().getQuery());
                String body = q.contains("research_run=rsolder")
                        ? BridgeClientTest.board("rsolder", "flat", "buy_and_hold", "majority_vote")
                        : BridgeClientTest.board("rsnewer", "flat");
                FakeBridge.send(ex, new FakeBridge.Answer(200, "application/json", body));
            });
            view = UiTestSupport.show(new BridgeConfig(fake.url(), "viewer-token", "demo"));
            UiTestSupport.waitFor(15, () -> "rsnewer".equals(view.leaderboardResearchRun()));
            assertEquals(List.of("rsnewer", "rsolder"), WaitForAsyncUtils.asyncFx(view::researchRunChoices).get());
            assertEquals(1, (int) WaitForAsyncUtils.asyncFx(view::leaderboardResearchCount).get());
            assertTrue(fake.requests.stream().filter(r -> r.get("path").equals("/api/models"))
                    .allMatch(r -> r.get("query").equals("null")), "the default asks for no run: the newest");

            WaitForAsyncUtils.asyncFx(() -> view.chooseResearchRun("rsolder")).get();
            UiTestSupport.waitFor(15, () -> "rsolder".equals(view.leaderboardResearchRun()));
            assertEquals(3, (int) WaitForAsyncUtils.asyncFx(view::leaderboardResearchCount).get());
            assertTrue(fake.requests.stream().anyMatch(r -> r.get("query").equals("research_run=rsolder")));

            WaitForAsyncUtils.asyncFx(() -> view.chooseResearchRun("rsnewer")).get();
            UiTestSupport.waitFor(15, () -> "rsnewer".equals(view.leaderboardResearchRun())
                    && view.leaderboardResearchCount() == 1);
        }
    }
}
