-- Baseline: one 1-row INSERT per transaction, no trigger.
INSERT INTO bench_ins (v) VALUES (1);
