-- Build a 3-stage flow with ~1,000,000 chunks and time every status view.
-- raw (date, source) -> clean (same) -> report (window -6..0); 333,334 keys each.
\timing on
SELECT dataflow.create_dataset('b_raw', 'date', location => 's3://lake/{dataset}/{key}/v{version}/');
SELECT dataflow.create_dataset('b_clean', 'date');
SELECT dataflow.create_dataset('b_report', 'date');
SELECT dataflow.create_job('b_clean_job', output => 'b_clean');
SELECT dataflow.add_input('b_clean_job', 'b_raw');
SELECT dataflow.create_job('b_report_job', output => 'b_report');
SELECT dataflow.add_input('b_report_job', 'b_clean', mapping => 'window', lo => -6, hi => 0);
\echo expect of the report range (creates the whole flow upstream)
SELECT dataflow.expect('b_report', '1000-01-07', '1913-06-20');
SELECT count(*) AS chunks FROM dataflow.chunk;
VACUUM ANALYZE;
\echo views
SELECT count(*) FROM dataflow.datasets;
SELECT count(*) FROM dataflow.datasets;
SELECT count(*) FROM dataflow.jobs;
SELECT count(*) FROM dataflow.jobs;
SELECT count(*) FROM dataflow.progress;
SELECT count(*) FROM dataflow.progress;
SELECT count(*) FROM dataflow.gaps;
