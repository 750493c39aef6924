package com.btcmeta.gui.ui;

import javafx.scene.Node;
import javafx.scene.control.Label;
import javafx.scene.layout.VBox;

/** A titled panel of the dashboard (styled by app.css). */
public class Card extends VBox {
    public Card(String title, Node... content) {
        super(6);
        getStyleClass().add("card");
        Label t = new Label(title.toUpperCase());
        t.getStyleClass().add("card-title");
        getChildren().add(t);
        getChildren().addAll(content);
    }
}
