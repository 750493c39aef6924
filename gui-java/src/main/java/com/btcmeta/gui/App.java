package com.btcmeta.gui;

import com.btcmeta.gui.api.BridgeConfig;
import com.btcmeta.gui.ui.MainView;
import javafx.application.Application;
import javafx.scene.Scene;
import javafx.stage.Stage;

/** The desktop client: one window, configured from args / system properties / environment. */
public class App extends Application {
    private MainView view;

    public static Scene scene(MainView view) {
        Scene scene = new Scene(view, 1440, 900);
        scene.getStylesheets().add(App.class.getResource("app.css").toExternalForm());
        return scene;
    }

    @Override
    public void start(Stage stage) {
        BridgeConfig config = BridgeConfig.resolve(getParameters().getNamed(), System.getenv());
        view = new MainView(config);
        stage.setTitle("BTC Meta · " + config.url() + " · " + config.namespace());
        stage.setScene(scene(view));
        // Below this the three columns and the leaderboard no longer fit; smaller screens scroll less well.
        stage.setMinWidth(1100);
        stage.setMinHeight(700);
        stage.show();
        view.start();
    }

    @Override
    public void stop() {
        if (view != null) {
            view.close();
        }
    }
}
