package com.btcmeta.gui;

import javafx.application.Application;

/**
 * Plain main class (not an Application subclass), so a fat jar or an IDE run on the class path
 * starts without "JavaFX runtime components are missing".
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        Application.launch(App.class, args);
    }
}
