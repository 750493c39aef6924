package com.btcmeta.gui;

import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.ui.MainView;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import javafx.stage.Stage;
import org.testfx.api.FxToolkit;
import org.testfx.util.WaitForAsyncUtils;

/** Shows a {@link MainView} in TestFX's (headless Monocle) primary stage and waits on conditions. */
final class UiTestSupport {
    private UiTestSupport() {}

    static MainView show(BridgeConfig config) throws Exception {
        Stage stage = FxToolkit.registerPrimaryStage();
        return WaitForAsyncUtils.asyncFx(() -> {
            MainView view = new MainView(config);
            stage.setScene(App.scene(view));
            stage.setWidth(1440);
            stage.setHeight(900);
            stage.show();
            view.start();
            return view;
        }).get(20, TimeUnit.SECONDS);
    }

    static void close(MainView view) throws Exception {
        if (view != null) {
            WaitForAsyncUtils.asyncFx(view::close).get(10, TimeUnit.SECONDS);
        }
    }

    static void waitFor(int seconds, Callable<Boolean> condition) throws Exception {
        WaitForAsyncUtils.waitFor(seconds, TimeUnit.SECONDS, () -> WaitForAsyncUtils.asyncFx(condition).get());
    }
}
