package com.btcmeta.gui.api;

import java.net.URI;
import java.util.Map;

/**
 * Where the bridge is and which token to present. Resolution order: command-line
 * {@code --bridge-url=/--token=/--namespace=}, then system properties {@code bridge.url},
 * {@code bridge.token}, {@code bridge.namespace}, then env {@code BTCMETA_BRIDGE_URL},
 * {@code BTCMETA_BRIDGE_TOKEN}, {@code BTCMETA_BRIDGE_NAMESPACE}; the settings dialog can change it later.
 */
public record BridgeConfig(String url, String token, String namespace) {
    public static final String DEFAULT_URL = "http://127.0.0.1:8080";
    public static final String DEFAULT_NAMESPACE = "live";

    public BridgeConfig {
        url = blank(url) ? DEFAULT_URL : stripSlash(url.trim());
        token = token == null ? "" : token.trim();
        namespace = blank(namespace) ? DEFAULT_NAMESPACE : namespace.trim();
        URI.create(url); // fail early on a malformed URL
    }

    public static BridgeConfig resolve(Map<String, String> named, Map<String, String> env) {
        return new BridgeConfig(
                first(named.get("bridge-url"), System.getProperty("bridge.url"), env.get("BTCMETA_BRIDGE_URL")),
                first(named.get("token"), System.getProperty("bridge.token"), env.get("BTCMETA_BRIDGE_TOKEN")),
                first(named.get("namespace"), System.getProperty("bridge.namespace"), env.get("BTCMETA_BRIDGE_NAMESPACE")));
    }

    public BridgeConfig with(String newUrl, String newToken, String newNamespace) {
        return new BridgeConfig(newUrl, newToken, newNamespace);
    }

    @Override
    public String toString() { // never print the token
        return "BridgeConfig[url=" + url + ", namespace=" + namespace + ", token=" + (token.isEmpty() ? "<none>" : "***") + "]";
    }

    private static String first(String... values) {
        for (String v : values) {
            if (!blank(v)) {
                return v;
            }
        }
        return null;
    }

    private static boolean blank(String s) {
        return s == null || s.isBlank();
    }

    private static String stripSlash(String s) {
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }
}
