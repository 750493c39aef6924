package com.btcmeta.gui.api;

/** One server-sent event: its id (for Last-Event-ID), type ("recommendation", ...) and JSON data. */
public record SseEvent(String id, String type, String data) {}
