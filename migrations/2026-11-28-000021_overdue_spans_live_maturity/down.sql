CREATE INDEX overdue_spans_live ON overdue_spans USING gist (danbao_overdue_live(starts_on, ends_on, closed_on));
DROP INDEX overdue_spans_live_maturity;
