-- The demo pipeline (psql variable :lake is the data directory):
--   events (hourly CSV, a source)  --rollup-->  daily  --report, 7-day window-->  weekly_report
-- daily and weekly_report require validation (demo/validate.sh).
SELECT dataflow.create_dataset('events', 'hour', location => :'lake' || '/events/{key}.csv');
SELECT dataflow.create_dataset('daily', 'date', location => :'lake' || '/daily/{key}/v{version}.csv',
                               requires_validation => true);
SELECT dataflow.create_dataset('weekly_report', 'date', requires_validation => true);

SELECT dataflow.create_job('rollup', output => 'daily', max_attempts => 2,
                           backoff_min => '0 s', backoff_max => '1 s');
SELECT dataflow.add_input('rollup', 'events', mapping => 'rollup');

SELECT dataflow.create_job('report', output => 'weekly_report', max_attempts => 2,
                           backoff_min => '0 s', backoff_max => '1 s');
SELECT dataflow.add_input('report', 'daily', mapping => 'window', lo => -6, hi => 0);

-- Where the report job loads its result, together with dataflow.complete().
CREATE SCHEMA demo;
CREATE TABLE demo.weekly_report (
  day       date PRIMARY KEY,
  events    bigint NOT NULL,
  amount    numeric(14, 2) NOT NULL,
  run_id    bigint NOT NULL,
  loaded_at timestamptz NOT NULL DEFAULT now()
);
