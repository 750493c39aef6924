package com.btcmeta.gui;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.btcmeta.gui.api.SseEvent;
import com.btcmeta.gui.api.SseParser;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SseParserTest {
    private List<SseEvent> parse(String last, String text) {
        List<SseEvent> out = new ArrayList<>();
        SseParser p = new SseParser(last, out::add);
        for (String line : text.split("\n", -1)) {
            p.line(line);
        }
        return out;
    }

    @Test
    void framesWithIdsTypesAndComments() {
        List<SseEvent> events = parse(null, "retry: 3000\n\n: keep-alive\n\nid: 7\nevent: tick\ndata: {\"a\":1}\n\n"
                + "id: 8\nevent: recommendation\ndata: {\"b\":2}\n\n");
        assertEquals(List.of(new SseEvent("7", "tick", "{\"a\":1}"), new SseEvent("8", "recommendation", "{\"b\":2}")), events);
    }

    @Test
    void multiLineDataAndDefaultTypeAndIdCarriedOver() {
        List<SseEvent> events = parse("3", "data: one\ndata:two\n\nevent: reset\ndata: {}\n\n");
        assertEquals(new SseEvent("3", "message", "one\ntwo"), events.get(0));
        assertEquals(new SseEvent("3", "reset", "{}"), events.get(1));
    }

    @Test
    void incompleteFrameIsNotDispatched() {
        assertEquals(List.of(), parse(null, "id: 1\nevent: tick\ndata: {}"));
    }
}
