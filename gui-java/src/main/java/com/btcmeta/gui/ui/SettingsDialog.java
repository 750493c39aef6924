package com.btcmeta.gui.ui;

import com.btcmeta.gui.api.BridgeConfig;
import javafx.scene.control.ButtonType;
import javafx.scene.control.Dialog;
import javafx.scene.control.Label;
import javafx.scene.control.PasswordField;
import javafx.scene.control.TextField;
import javafx.scene.layout.GridPane;

/** Edit the bridge URL, token and namespace at run time (e.g. after a "token rejected" banner). */
public class SettingsDialog extends Dialog<BridgeConfig> {
    public SettingsDialog(BridgeConfig current) {
        setTitle("Bridge settings");
        setHeaderText("Where is the bridge, and which token should the client present?");
        TextField url = new TextField(current.url());
        PasswordField token = new PasswordField();
        token.setText(current.token());
        TextField namespace = new TextField(current.namespace());
        url.setId("settings-url");
        token.setId("settings-token");
        namespace.setId("settings-namespace");
        GridPane grid = new GridPane();
        grid.setHgap(8);
        grid.setVgap(8);
        grid.addRow(0, new Label("Bridge URL"), url);
        grid.addRow(1, new Label("Token"), token);
        grid.addRow(2, new Label("Namespace"), namespace);
        url.setPrefColumnCount(28);
        getDialogPane().setContent(grid);
        getDialogPane().getButtonTypes().addAll(ButtonType.OK, ButtonType.CANCEL);
        setResultConverter(b -> b == ButtonType.OK ? current.with(url.getText(), token.getText(), namespace.getText()) : null);
    }
}
