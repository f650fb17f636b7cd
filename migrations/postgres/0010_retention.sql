-- Retention deletes log lines and invocation records by age: without these, every pass would
-- read the whole table.
CREATE INDEX function_logs_age ON function_logs(timestamp_us);
CREATE INDEX function_invocations_age ON function_invocations(started_at);
CREATE INDEX function_rejections_age ON function_rejections(second);
