package com.btcmeta.gui.api;

/** A failed bridge call, classified so the UI can say what to fix (start the bridge, fix the token...). */
public class BridgeException extends Exception {
    public enum Kind {
        UNREACHABLE,
        UNAUTHORIZED,
        FORBIDDEN,
        SERVER,
        BAD_RESPONSE
    }

    private final Kind kind;
    private final int status;

    public BridgeException(Kind kind, int status, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
        this.status = status;
    }

    public Kind kind() {
        return kind;
    }

    public int status() {
        return status;
    }

    /** One line for the error banner. */
    public String userMessage() {
        return switch (kind) {
            case UNREACHABLE -> "Bridge unreachable: " + getMessage() + ". Is it running? Check the URL in Settings.";
            case UNAUTHORIZED -> "Token rejected by the bridge (401). Set a valid token in Settings.";
            case FORBIDDEN -> "This token may only view; the action needs an operator token (403).";
            case SERVER -> "Bridge error " + status + ": " + getMessage();
            case BAD_RESPONSE -> "Unexpected answer from the bridge: " + getMessage();
        };
    }
}
