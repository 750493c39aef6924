package com.btcmeta.gui.ui;

import java.util.List;

/**
 * Short, readable names for heartbeat services. A replay names its services after its namespace
 * ({@code demo.r20261206t070029.strategy.bband_rsi}); heartbeats are not namespaced, so the status
 * lists every run's services. The desk shows the connected run's own ones without the prefix and
 * folds the others away (the full name stays in a tooltip).
 */
public final class ServiceNames {
    /** Where a service's own name starts; anything before it is a run prefix. */
    private static final List<String> BASES = List.of(
            "strategy:", "strategy.", "executor", "meta-consumer", "meta_consumer", "tick_emitter", "tick-emitter", "bridge");

    private ServiceNames() {}

    /** The run prefix of {@code service} ("" when it has none). */
    static String prefix(String service) {
        int best = -1;
        for (String base : BASES) {
            int i = service.indexOf(base);
            if (i == 0) {
                return "";
            }
            if (i > 0 && service.charAt(i - 1) == '.' && (best < 0 || i < best)) {
                best = i;
            }
        }
        return best < 0 ? "" : service.substring(0, best);
    }

    /** True when the service carries a run prefix that is not {@code namespace}. */
    public static boolean belongsToOtherRun(String service, String namespace) {
        String prefix = prefix(service);
        return !prefix.isEmpty() && !prefix.equals(namespace) && !prefix.equals(namespace + ".");
    }

    /** {@code demo.r…​.strategy.bband_rsi} → {@code ▸ bband_rsi}; {@code demo.r….executor} → {@code executor}. */
    public static String display(String service, String namespace) {
        String name = service.substring(prefix(service).length());
        if (name.startsWith("strategy:") || name.startsWith("strategy.")) {
            return "▸ " + name.substring("strategy.".length());
        }
        return name;
    }
}
