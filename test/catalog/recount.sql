-- The status counters (dataflow.chunk_count) against a recount of the chunks: the
-- number of (dataset, status) pairs where they differ, 0 when consistent. Used by the
-- integration suites that rebuild or carry state over (upgrade.sh, dump_restore.sh).
SELECT count(*) FROM (
  (SELECT k.dataset_id, s.status, sum(s.n) FROM dataflow.chunk_count k,
          LATERAL (VALUES ('waiting', k.waiting), ('queued', k.queued), ('running', k.running), ('ready', k.ready),
                          ('validated', k.validated), ('invalid', k.invalid), ('failed', k.failed),
                          ('skipped', k.skipped), ('cancelled', k.cancelled), ('resubmit', k.resubmit)) s (status, n)
    GROUP BY 1, 2 HAVING sum(s.n) <> 0
   EXCEPT SELECT dataset_id, status, count(*) FROM dataflow.chunk GROUP BY 1, 2)
  UNION ALL
  (SELECT dataset_id, status, count(*) FROM dataflow.chunk GROUP BY 1, 2
   EXCEPT SELECT k.dataset_id, s.status, sum(s.n) FROM dataflow.chunk_count k,
          LATERAL (VALUES ('waiting', k.waiting), ('queued', k.queued), ('running', k.running), ('ready', k.ready),
                          ('validated', k.validated), ('invalid', k.invalid), ('failed', k.failed),
                          ('skipped', k.skipped), ('cancelled', k.cancelled), ('resubmit', k.resubmit)) s (status, n)
    GROUP BY 1, 2)) x
