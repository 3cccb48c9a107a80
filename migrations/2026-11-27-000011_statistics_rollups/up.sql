-- Statistics rollups: the principal falling due (and what was paid of it, on time, and the
-- subsidy earned) summed by month of due date and by cell (region, bank, centre, category),
-- so that "since the start" reads a few thousand rows instead of every instalment of the
-- history (6.9 s of a 9.5 s province summary at a million loans, docs/statistics-at-scale.md).

-- A payment carries the due date of its instalment, so that a due date moved by an
-- extension rewrites the payment row too (and so its rollup month), and so that the payments
-- made after an as-of date to instalments due before it are found by one partial index.
ALTER TABLE principal_payments ADD COLUMN due_date DATE;
UPDATE principal_payments p SET due_date = f.due_date
  FROM instalment_facts f WHERE f.loan_id = p.loan_id AND f.number = p.number;
ALTER TABLE principal_payments ALTER COLUMN due_date SET NOT NULL;
ALTER TABLE instalment_facts ADD CONSTRAINT instalment_facts_number_due UNIQUE (loan_id, number, due_date);
ALTER TABLE principal_payments DROP CONSTRAINT principal_payments_loan_id_number_fkey,
  ADD CONSTRAINT principal_payments_instalment_fkey FOREIGN KEY (loan_id, number, due_date)
    REFERENCES instalment_facts (loan_id, number, due_date) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX principal_payments_late ON principal_payments (value_date) WHERE value_date > due_date;

-- Rolled up: month ('m') and year ('y') rows, the period being the first day of either.
CREATE TABLE stat_due_rollups (
  grain        CHAR(1) NOT NULL CHECK (grain IN ('m', 'y')),
  period       DATE NOT NULL,
  region_code  TEXT NOT NULL,
  bank_id      UUID NOT NULL,
  centre_id    UUID NOT NULL,
  category     TEXT NOT NULL,
  fell_due     NUMERIC(18, 2) NOT NULL,
  paid         NUMERIC(18, 2) NOT NULL,
  paid_on_time NUMERIC(18, 2) NOT NULL,
  subsidy      NUMERIC(18, 2) NOT NULL,
  -- How many instalments fell due, and how many of them earn their subsidy (paid on time,
  -- not extended): a group is shown when it has any, as a scan of the facts would show it.
  instalments  BIGINT NOT NULL CHECK (instalments >= 0),
  subsidised   BIGINT NOT NULL CHECK (subsidised >= 0 AND subsidised <= instalments),
  PRIMARY KEY (grain, period, region_code, bank_id, centre_id, category),
  CONSTRAINT stat_due_rollups_period CHECK (period = date_trunc(CASE grain WHEN 'y' THEN 'year' ELSE 'month' END, period)::date),
  -- What was paid of an instalment is at most its principal, on time at most what was paid.
  CONSTRAINT stat_due_rollups_paid CHECK (0 <= paid_on_time AND paid_on_time <= paid AND paid <= fell_due AND subsidy >= 0)
);

-- Not rolled up yet: each statement that writes facts appends its net change here (inserts
-- only, so concurrent repayments never wait on a shared row); `danbao serve` moves them into
-- the rollups every few seconds. Reads add both.
CREATE TABLE stat_due_deltas (
  period       DATE NOT NULL CHECK (period = date_trunc('month', period)::date),
  region_code  TEXT NOT NULL,
  bank_id      UUID NOT NULL,
  centre_id    UUID NOT NULL,
  category     TEXT NOT NULL,
  fell_due     NUMERIC(18, 2) NOT NULL,
  paid         NUMERIC(18, 2) NOT NULL,
  paid_on_time NUMERIC(18, 2) NOT NULL,
  subsidy      NUMERIC(18, 2) NOT NULL,
  instalments  BIGINT NOT NULL,
  subsidised   BIGINT NOT NULL
);

-- The net change of a statement's rows, per month and cell: the rows it removed count
-- negative, the rows it added positive. Instalment facts bring their principal, and their
-- subsidy if paid on time; principal payments what was paid, and on time if by the due date
-- + grace. (Static statements, so that their plans are cached: a trigger runs four times
-- per repayment.)
CREATE FUNCTION danbao_stat_due_facts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO stat_due_deltas
    SELECT date_trunc('month', f.due_date)::date, l.region_code, l.bank_id, l.centre_id, l.category,
           -sum(f.principal), 0, 0,
           -coalesce(sum(f.subsidy) FILTER (WHERE NOT f.extended AND f.paid_on <= f.due_date + po.grace_days), 0),
           -count(*), -count(*) FILTER (WHERE NOT f.extended AND f.paid_on <= f.due_date + po.grace_days)
    FROM old_rows f JOIN loans l ON l.id = f.loan_id JOIN policies po ON po.id = l.policy_id
    GROUP BY 1, 2, 3, 4, 5;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO stat_due_deltas
    SELECT date_trunc('month', f.due_date)::date, l.region_code, l.bank_id, l.centre_id, l.category,
           sum(f.principal), 0, 0,
           coalesce(sum(f.subsidy) FILTER (WHERE NOT f.extended AND f.paid_on <= f.due_date + po.grace_days), 0),
           count(*), count(*) FILTER (WHERE NOT f.extended AND f.paid_on <= f.due_date + po.grace_days)
    FROM new_rows f JOIN loans l ON l.id = f.loan_id JOIN policies po ON po.id = l.policy_id
    GROUP BY 1, 2, 3, 4, 5;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION danbao_stat_due_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO stat_due_deltas
    SELECT date_trunc('month', p.due_date)::date, l.region_code, l.bank_id, l.centre_id, l.category,
           0, -sum(p.principal),
           -coalesce(sum(p.principal) FILTER (WHERE p.value_date <= p.due_date + po.grace_days), 0), 0, 0, 0
    FROM old_rows p JOIN loans l ON l.id = p.loan_id JOIN policies po ON po.id = l.policy_id
    GROUP BY 1, 2, 3, 4, 5;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO stat_due_deltas
    SELECT date_trunc('month', p.due_date)::date, l.region_code, l.bank_id, l.centre_id, l.category,
           0, sum(p.principal),
           coalesce(sum(p.principal) FILTER (WHERE p.value_date <= p.due_date + po.grace_days), 0), 0, 0, 0
    FROM new_rows p JOIN loans l ON l.id = p.loan_id JOIN policies po ON po.id = l.policy_id
    GROUP BY 1, 2, 3, 4, 5;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER instalment_facts_rollup_insert AFTER INSERT ON instalment_facts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_due_facts();
CREATE TRIGGER instalment_facts_rollup_update AFTER UPDATE ON instalment_facts
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_due_facts();
CREATE TRIGGER instalment_facts_rollup_delete AFTER DELETE ON instalment_facts
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_due_facts();
CREATE TRIGGER principal_payments_rollup_insert AFTER INSERT ON principal_payments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_due_payments();
CREATE TRIGGER principal_payments_rollup_update AFTER UPDATE ON principal_payments
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_due_payments();
CREATE TRIGGER principal_payments_rollup_delete AFTER DELETE ON principal_payments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_due_payments();

-- TRUNCATE would bypass the triggers above; the facts are only ever rewritten row by row.
CREATE FUNCTION danbao_forbid_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is kept by row changes (its statistics rollups would go stale)', TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER instalment_facts_no_truncate BEFORE TRUNCATE ON instalment_facts
  FOR EACH STATEMENT EXECUTE FUNCTION danbao_forbid_truncate();
CREATE TRIGGER principal_payments_no_truncate BEFORE TRUNCATE ON principal_payments
  FOR EACH STATEMENT EXECUTE FUNCTION danbao_forbid_truncate();

-- A loan's cell and policy (its grace days) are what its facts were rolled up under.
CREATE FUNCTION danbao_loan_cell_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.region_code, NEW.bank_id, NEW.centre_id, NEW.category, NEW.policy_id)
     IS DISTINCT FROM (OLD.region_code, OLD.bank_id, OLD.centre_id, OLD.category, OLD.policy_id) THEN
    RAISE EXCEPTION 'a loan''s region, bank, centre, category and policy do not change'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER loans_cell_fixed BEFORE UPDATE OF region_code, bank_id, centre_id, category, policy_id ON loans
  FOR EACH ROW EXECUTE FUNCTION danbao_loan_cell_fixed();

-- Moves every pending delta into the rollups, one mover at a time. Returns the deltas moved.
CREATE FUNCTION danbao_roll_up_stat_due() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE moved BIGINT;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('danbao_roll_up_stat_due'))
     OR NOT EXISTS (SELECT 1 FROM stat_due_deltas) THEN
    RETURN 0;
  END IF;
  WITH d AS (DELETE FROM stat_due_deltas RETURNING *),
  m AS (SELECT period, region_code, bank_id, centre_id, category, sum(fell_due) AS fell_due, sum(paid) AS paid,
               sum(paid_on_time) AS paid_on_time, sum(subsidy) AS subsidy, sum(instalments) AS instalments,
               sum(subsidised) AS subsidised, count(*) AS n
        FROM d GROUP BY 1, 2, 3, 4, 5),
  g AS (SELECT 'm'::char(1) AS grain, period, region_code, bank_id, centre_id, category, fell_due, paid, paid_on_time, subsidy,
               instalments, subsidised FROM m
        UNION ALL
        SELECT 'y'::char(1), date_trunc('year', period)::date, region_code, bank_id, centre_id, category,
               sum(fell_due), sum(paid), sum(paid_on_time), sum(subsidy), sum(instalments), sum(subsidised)
        FROM m GROUP BY 2, 3, 4, 5, 6),
  -- Existing rows are updated, new ones inserted. (Not INSERT .. ON CONFLICT: it checks the
  -- constraints on the row it would insert, and a delta alone may be negative.)
  up AS (UPDATE stat_due_rollups r
         SET fell_due = r.fell_due + g.fell_due, paid = r.paid + g.paid, paid_on_time = r.paid_on_time + g.paid_on_time,
             subsidy = r.subsidy + g.subsidy, instalments = r.instalments + g.instalments,
             subsidised = r.subsidised + g.subsidised
         FROM g
         WHERE (r.grain, r.period, r.region_code, r.bank_id, r.centre_id, r.category)
             = (g.grain, g.period, g.region_code, g.bank_id, g.centre_id, g.category)
         RETURNING r.grain, r.period, r.region_code, r.bank_id, r.centre_id, r.category),
  ins AS (INSERT INTO stat_due_rollups
          SELECT g.* FROM g WHERE NOT EXISTS (
            SELECT 1 FROM up WHERE (up.grain, up.period, up.region_code, up.bank_id, up.centre_id, up.category)
                                 = (g.grain, g.period, g.region_code, g.bank_id, g.centre_id, g.category)))
  SELECT coalesce(sum(n), 0) INTO moved FROM m;
  RETURN moved;
END $$;

-- The rollups as the facts say they should be (for `danbao verify`, and to build them).
CREATE VIEW stat_due_expected AS
  WITH m AS (
    SELECT period, region_code, bank_id, centre_id, category, sum(fell_due) AS fell_due, sum(paid) AS paid,
           sum(paid_on_time) AS paid_on_time, sum(subsidy) AS subsidy, sum(instalments)::bigint AS instalments,
           sum(subsidised)::bigint AS subsidised
    FROM (
      SELECT date_trunc('month', f.due_date)::date AS period, l.region_code, l.bank_id, l.centre_id, l.category,
             f.principal AS fell_due, 0 AS paid, 0 AS paid_on_time,
             CASE WHEN NOT f.extended AND f.paid_on <= f.due_date + po.grace_days THEN f.subsidy ELSE 0 END AS subsidy,
             1 AS instalments,
             CASE WHEN NOT f.extended AND f.paid_on <= f.due_date + po.grace_days THEN 1 ELSE 0 END AS subsidised
      FROM instalment_facts f JOIN loans l ON l.id = f.loan_id JOIN policies po ON po.id = l.policy_id
      UNION ALL
      SELECT date_trunc('month', p.due_date)::date, l.region_code, l.bank_id, l.centre_id, l.category,
             0, p.principal, CASE WHEN p.value_date <= p.due_date + po.grace_days THEN p.principal ELSE 0 END, 0, 0, 0
      FROM principal_payments p JOIN loans l ON l.id = p.loan_id JOIN policies po ON po.id = l.policy_id
    ) x GROUP BY 1, 2, 3, 4, 5)
  SELECT 'm'::char(1) AS grain, * FROM m
  UNION ALL
  SELECT 'y', date_trunc('year', period)::date, region_code, bank_id, centre_id, category,
         sum(fell_due), sum(paid), sum(paid_on_time), sum(subsidy), sum(instalments)::bigint, sum(subsidised)::bigint
  FROM m GROUP BY 2, 3, 4, 5, 6;

-- The rollups as stored: rolled up plus pending, by key.
CREATE VIEW stat_due_current AS
  SELECT grain, period, region_code, bank_id, centre_id, category, sum(fell_due) AS fell_due, sum(paid) AS paid,
         sum(paid_on_time) AS paid_on_time, sum(subsidy) AS subsidy, sum(instalments)::bigint AS instalments,
         sum(subsidised)::bigint AS subsidised
  FROM (
    SELECT * FROM stat_due_rollups
    UNION ALL
    SELECT 'm', period, region_code, bank_id, centre_id, category, fell_due, paid, paid_on_time, subsidy,
           instalments, subsidised
    FROM stat_due_deltas
    UNION ALL
    SELECT 'y', date_trunc('year', period)::date, region_code, bank_id, centre_id, category, fell_due, paid,
           paid_on_time, subsidy, instalments, subsidised
    FROM stat_due_deltas
  ) x GROUP BY 1, 2, 3, 4, 5, 6;

-- Rebuilds the rollups from the facts (after a bulk load that bypassed the triggers).
CREATE FUNCTION danbao_rebuild_stat_due() RETURNS VOID LANGUAGE sql AS $$
  DELETE FROM stat_due_deltas;
  DELETE FROM stat_due_rollups;
  INSERT INTO stat_due_rollups SELECT * FROM stat_due_expected;
$$;

SELECT danbao_rebuild_stat_due();
