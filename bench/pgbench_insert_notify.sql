-- Baseline: one 1-row INSERT per transaction, with a pg_notify() trigger (as NOTIFY-driven queues do).
INSERT INTO bench_ins_notify (v) VALUES (1);
