-- The funds' balance on an as-of date summed every ledger entry up to it (36 to 44 ms of a
-- province summary at a million loans: 72,000 compensations and recoveries). The entries are
-- now also summed by fund and month, in the statement that writes them (entries are only ever
-- appended, and few: a compensation, a recovery, a contribution), so the balance on a date
-- reads the months before its month and the entries of its month.
CREATE TABLE fund_ledger_months (
  fund_id       UUID NOT NULL REFERENCES funds (id),
  period        DATE NOT NULL CHECK (period = date_trunc('month', period)::date),
  contributions NUMERIC(18, 2) NOT NULL CHECK (contributions >= 0),
  amount        NUMERIC(18, 2) NOT NULL,
  entries       BIGINT NOT NULL CHECK (entries > 0),
  PRIMARY KEY (fund_id, period)
);

CREATE FUNCTION danbao_fund_ledger_months() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO fund_ledger_months AS m
  SELECT e.fund_id, date_trunc('month', e.value_date)::date,
         coalesce(sum(e.amount) FILTER (WHERE e.kind = 'contribution'), 0), sum(e.amount), count(*)
  FROM new_rows e GROUP BY 1, 2
  ON CONFLICT (fund_id, period) DO UPDATE
    SET contributions = m.contributions + EXCLUDED.contributions, amount = m.amount + EXCLUDED.amount,
        entries = m.entries + EXCLUDED.entries;
  RETURN NULL;
END $$;
CREATE TRIGGER fund_ledger_months AFTER INSERT ON fund_ledger_entries
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_fund_ledger_months();
CREATE TRIGGER fund_ledger_no_truncate BEFORE TRUNCATE ON fund_ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION danbao_forbid_truncate();

-- The months as the entries say (for `danbao verify`, and to build them here).
CREATE VIEW fund_ledger_months_expected AS
  SELECT fund_id, date_trunc('month', value_date)::date AS period,
         coalesce(sum(amount) FILTER (WHERE kind = 'contribution'), 0) AS contributions, sum(amount) AS amount,
         count(*) AS entries
  FROM fund_ledger_entries GROUP BY 1, 2;
INSERT INTO fund_ledger_months SELECT * FROM fund_ledger_months_expected;

-- The entries of the as-of date's month, of every fund.
CREATE INDEX fund_ledger_value_date ON fund_ledger_entries (value_date);
