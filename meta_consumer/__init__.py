"""Meta consumer: joins strategy recommendations per tick, runs the selected policy, emits intents."""
