package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.btcmeta.gui.api.Dto;
import com.btcmeta.gui.ui.ServiceNames;
import java.time.OffsetDateTime;
import org.junit.jupiter.api.Test;

/** Heartbeat names as a replay writes them, shortened for the services card. */
class ServiceNamesTest {
    private static final String RUN = "demo.r20261206t070029.";

    @Test
    void runPrefixIsStrippedAndStrategiesMarked() {
        assertEquals("▸ bband_rsi", ServiceNames.display(RUN + "strategy.bband_rsi", RUN));
        assertEquals("executor", ServiceNames.display(RUN + "executor", RUN));
        assertEquals("meta-consumer", ServiceNames.display(RUN + "meta-consumer", RUN));
        assertEquals("▸ ott", ServiceNames.display("strategy:ott", "live"));
        assertEquals("tick_emitter", ServiceNames.display("tick_emitter", "live"));
    }

    @Test
    void otherRunsAreRecognised() {
        assertFalse(ServiceNames.belongsToOtherRun(RUN + "executor", RUN));
        assertFalse(ServiceNames.belongsToOtherRun("executor", RUN));
        assertTrue(ServiceNames.belongsToOtherRun("demo.r20220101t000000.executor", RUN));
        assertTrue(ServiceNames.belongsToOtherRun("demo.r20220101t000000.strategy.ott", RUN));
        assertFalse(ServiceNames.belongsToOtherRun("demo.executor", "demo"));
    }

    @Test
    void decisionTimeIsTheTickNotTheWriteTime() {
        OffsetDateTime written = OffsetDateTime.parse("2026-12-06T07:02:02Z");
        assertEquals(OffsetDateTime.parse("2022-08-20T00:00Z"), Dto.tickTime("BTC/USD:USD|2022-08-20T00:00Z", written));
        assertEquals(written, Dto.tickTime("no-time-here", written));
    }
}
