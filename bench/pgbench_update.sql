-- Baseline: the physical limit, one 1-row UPDATE per committed transaction.
\set id random(1, 1000)
UPDATE bench_row SET n = n + 1 WHERE id = :id;
