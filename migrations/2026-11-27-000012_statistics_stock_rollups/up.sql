-- Statistics rollups of the stocks on the as-of date: cumulative issuance, outstanding balance
-- and outstanding guaranteed (with the number of guarantees in force), as events by date
-- summed by month, year and cell, so that a stock on any date reads a few thousand rows
-- instead of every loan and its payments (1.8 to 2.7 s of a province summary at a million
-- loans, docs/statistics-at-scale.md).
--
-- A loan's contribution to a stock on date A is the sum of its events dated on or before A:
--   * its loan events: +1 and +principal issued on the disbursement date; +principal of
--     balance on the disbursement date, -principal on its end (the release, or the
--     disbursement if released before it); +1 guarantee and +principal guaranteed on the
--     approval date, -1 and -principal on the release;
--   * each principal payment's events: -amount on its value date and +amount on the loan's
--     end, when it is on or before the end (a payment after it changes nothing).
-- So a released loan counts nothing from its release on, whatever its status, as the scans
-- say (a settled loan has repaid its principal, a compensated or written-off one is out of
-- the balance, a released guarantee is not outstanding), and before it principal less what
-- was paid by A. Both parts are functions of one row: triggers append the net change of each
-- statement to `stat_stock_deltas`, and serve rolls them up with the principal falling due.

CREATE INDEX principal_payments_value_date ON principal_payments (value_date);
CREATE INDEX loans_approved_on ON loans (approved_on) WHERE approved_on IS NOT NULL;
CREATE INDEX loans_released_on ON loans (released_on) WHERE released_on IS NOT NULL;

-- The events of a loan itself, by day.
CREATE FUNCTION danbao_stat_stock_loan(amount NUMERIC, approved DATE, disbursed DATE, released DATE)
RETURNS TABLE (day DATE, issued BIGINT, issued_amount NUMERIC, balance NUMERIC, guarantees BIGINT, guaranteed NUMERIC)
LANGUAGE sql IMMUTABLE AS $$
  SELECT e.d, e.i, e.ia, e.b, e.gn, e.g FROM (VALUES
    (disbursed, 1::bigint, amount, amount, 0::bigint, 0::numeric),
    (approved, 0, 0, 0, 1, amount),
    (CASE WHEN released IS NOT NULL AND disbursed IS NOT NULL THEN greatest(released, disbursed) END, 0, 0, -amount, 0, 0),
    (released, 0, 0, 0, -1, -amount)
  ) e (d, i, ia, b, gn, g)
  WHERE e.d IS NOT NULL
$$;

-- The events of one principal payment of a loan disbursed on `disbursed`, released on
-- `released`, by day.
CREATE FUNCTION danbao_stat_stock_payment(v DATE, amount NUMERIC, disbursed DATE, released DATE)
RETURNS TABLE (day DATE, balance NUMERIC, guaranteed NUMERIC)
LANGUAGE sql IMMUTABLE AS $$
  SELECT e.d, e.b, e.g FROM (
    SELECT CASE WHEN released IS NOT NULL THEN greatest(released, disbursed) END AS end_b) x
  CROSS JOIN LATERAL (VALUES
    (v, CASE WHEN x.end_b IS NULL OR v <= x.end_b THEN -amount ELSE 0 END,
        CASE WHEN released IS NULL OR v <= released THEN -amount ELSE 0 END),
    (x.end_b, CASE WHEN v <= x.end_b THEN amount ELSE 0 END, 0),
    (released, 0, CASE WHEN v <= released THEN amount ELSE 0 END)
  ) e (d, b, g)
  WHERE e.d IS NOT NULL AND (e.b <> 0 OR e.g <> 0)
$$;

CREATE TABLE stat_stock_rollups (
  grain         CHAR(1) NOT NULL CHECK (grain IN ('m', 'y')),
  period        DATE NOT NULL,
  region_code   TEXT NOT NULL,
  bank_id       UUID NOT NULL,
  centre_id     UUID NOT NULL,
  category      TEXT NOT NULL,
  -- Changes in the period: they are negative where more ended than began.
  issued        BIGINT NOT NULL CHECK (issued >= 0),
  issued_amount NUMERIC(18, 2) NOT NULL CHECK (issued_amount >= 0),
  balance       NUMERIC(18, 2) NOT NULL,
  guarantees    BIGINT NOT NULL,
  guaranteed    NUMERIC(18, 2) NOT NULL,
  PRIMARY KEY (grain, period, region_code, bank_id, centre_id, category),
  CONSTRAINT stat_stock_rollups_period CHECK (period = date_trunc(CASE grain WHEN 'y' THEN 'year' ELSE 'month' END, period)::date)
);

-- Not rolled up yet, as `stat_due_deltas`.
CREATE TABLE stat_stock_deltas (
  period        DATE NOT NULL CHECK (period = date_trunc('month', period)::date),
  region_code   TEXT NOT NULL,
  bank_id       UUID NOT NULL,
  centre_id     UUID NOT NULL,
  category      TEXT NOT NULL,
  issued        BIGINT NOT NULL,
  issued_amount NUMERIC(18, 2) NOT NULL,
  balance       NUMERIC(18, 2) NOT NULL,
  guarantees    BIGINT NOT NULL,
  guaranteed    NUMERIC(18, 2) NOT NULL
);

-- A statement's payments: the events of the rows it removed count negative, of those it
-- added positive, under the loan as it is now.
CREATE FUNCTION danbao_stat_stock_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO stat_stock_deltas
    SELECT date_trunc('month', e.day)::date, l.region_code, l.bank_id, l.centre_id, l.category,
           0, 0, -sum(e.balance), 0, -sum(e.guaranteed)
    FROM old_rows p JOIN loans l ON l.id = p.loan_id
    CROSS JOIN LATERAL danbao_stat_stock_payment(p.value_date, p.principal, l.disbursed_on, l.released_on) e
    GROUP BY 1, 2, 3, 4, 5;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO stat_stock_deltas
    SELECT date_trunc('month', e.day)::date, l.region_code, l.bank_id, l.centre_id, l.category,
           0, 0, sum(e.balance), 0, sum(e.guaranteed)
    FROM new_rows p JOIN loans l ON l.id = p.loan_id
    CROSS JOIN LATERAL danbao_stat_stock_payment(p.value_date, p.principal, l.disbursed_on, l.released_on) e
    GROUP BY 1, 2, 3, 4, 5;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER principal_payments_stock_insert AFTER INSERT ON principal_payments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_stock_payments();
CREATE TRIGGER principal_payments_stock_update AFTER UPDATE ON principal_payments
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_stock_payments();
CREATE TRIGGER principal_payments_stock_delete AFTER DELETE ON principal_payments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_stat_stock_payments();

-- A loan approved, disbursed or released: its events as it is now less its events as it was,
-- its payments' included (a release moves their end). Rare (a few times in a loan's life),
-- so a row trigger, fired only when one of those dates or the principal changes. The cell is
-- fixed (`loans_cell_fixed`).
CREATE FUNCTION danbao_stat_stock_loans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO stat_stock_deltas
  SELECT date_trunc('month', e.day)::date, NEW.region_code, NEW.bank_id, NEW.centre_id, NEW.category,
         sum(e.issued), sum(e.issued_amount), sum(e.balance), sum(e.guarantees), sum(e.guaranteed)
  FROM (
    SELECT * FROM danbao_stat_stock_loan(NEW.principal, NEW.approved_on, NEW.disbursed_on, NEW.released_on)
    UNION ALL
    SELECT q.day, 0, 0, q.balance, 0, q.guaranteed
    FROM principal_payments p
    CROSS JOIN LATERAL danbao_stat_stock_payment(p.value_date, p.principal, NEW.disbursed_on, NEW.released_on) q
    WHERE p.loan_id = NEW.id
    UNION ALL
    SELECT o.day, -o.issued, -o.issued_amount, -o.balance, -o.guarantees, -o.guaranteed
    FROM danbao_stat_stock_loan(OLD.principal, OLD.approved_on, OLD.disbursed_on, OLD.released_on) o
    WHERE TG_OP = 'UPDATE'
    UNION ALL
    SELECT q.day, 0, 0, -q.balance, 0, -q.guaranteed
    FROM principal_payments p
    CROSS JOIN LATERAL danbao_stat_stock_payment(p.value_date, p.principal, OLD.disbursed_on, OLD.released_on) q
    WHERE TG_OP = 'UPDATE' AND p.loan_id = OLD.id
  ) e
  GROUP BY 1
  HAVING sum(e.issued) <> 0 OR sum(e.issued_amount) <> 0 OR sum(e.balance) <> 0 OR sum(e.guarantees) <> 0
      OR sum(e.guaranteed) <> 0;
  RETURN NULL;
END $$;

CREATE TRIGGER loans_stock_insert AFTER INSERT ON loans
  FOR EACH ROW WHEN (NEW.approved_on IS NOT NULL) EXECUTE FUNCTION danbao_stat_stock_loans();
CREATE TRIGGER loans_stock_update AFTER UPDATE ON loans
  FOR EACH ROW WHEN ((OLD.principal, OLD.approved_on, OLD.disbursed_on, OLD.released_on)
                     IS DISTINCT FROM (NEW.principal, NEW.approved_on, NEW.disbursed_on, NEW.released_on))
  EXECUTE FUNCTION danbao_stat_stock_loans();

-- Moves every pending delta into the rollups, one mover at a time (as
-- `danbao_roll_up_stat_due`). Returns the deltas moved.
CREATE FUNCTION danbao_roll_up_stat_stock() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE moved BIGINT;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('danbao_roll_up_stat_stock'))
     OR NOT EXISTS (SELECT 1 FROM stat_stock_deltas) THEN
    RETURN 0;
  END IF;
  WITH d AS (DELETE FROM stat_stock_deltas RETURNING *),
  m AS (SELECT period, region_code, bank_id, centre_id, category, sum(issued) AS issued,
               sum(issued_amount) AS issued_amount, sum(balance) AS balance, sum(guarantees) AS guarantees,
               sum(guaranteed) AS guaranteed, count(*) AS n
        FROM d GROUP BY 1, 2, 3, 4, 5),
  g AS (SELECT 'm'::char(1) AS grain, period, region_code, bank_id, centre_id, category, issued, issued_amount,
               balance, guarantees, guaranteed FROM m
        UNION ALL
        SELECT 'y'::char(1), date_trunc('year', period)::date, region_code, bank_id, centre_id, category,
               sum(issued), sum(issued_amount), sum(balance), sum(guarantees), sum(guaranteed)
        FROM m GROUP BY 2, 3, 4, 5, 6),
  up AS (UPDATE stat_stock_rollups r
         SET issued = r.issued + g.issued, issued_amount = r.issued_amount + g.issued_amount,
             balance = r.balance + g.balance, guarantees = r.guarantees + g.guarantees,
             guaranteed = r.guaranteed + g.guaranteed
         FROM g
         WHERE (r.grain, r.period, r.region_code, r.bank_id, r.centre_id, r.category)
             = (g.grain, g.period, g.region_code, g.bank_id, g.centre_id, g.category)
         RETURNING r.grain, r.period, r.region_code, r.bank_id, r.centre_id, r.category),
  ins AS (INSERT INTO stat_stock_rollups
          SELECT g.* FROM g WHERE NOT EXISTS (
            SELECT 1 FROM up WHERE (up.grain, up.period, up.region_code, up.bank_id, up.centre_id, up.category)
                                 = (g.grain, g.period, g.region_code, g.bank_id, g.centre_id, g.category)))
  SELECT coalesce(sum(n), 0) INTO moved FROM m;
  RETURN moved;
END $$;

-- The rollups as the loans and payments say they should be (for `danbao verify`, and to
-- build them). Written set-based, apart from the functions the triggers use, so that verify
-- compares two formulations of the events (and so that it takes 29 s at a million loans,
-- where the functions applied to every payment took 105 s).
CREATE VIEW stat_stock_expected AS
  WITH l AS (
    SELECT id, region_code, bank_id, centre_id, category, principal, approved_on, disbursed_on, released_on,
           CASE WHEN released_on IS NOT NULL AND disbursed_on IS NOT NULL THEN greatest(released_on, disbursed_on) END AS end_b
    FROM loans WHERE approved_on IS NOT NULL),
  paid AS (
    SELECT p.loan_id, sum(p.principal) FILTER (WHERE p.value_date <= l.end_b) AS by_end_b,
           sum(p.principal) FILTER (WHERE p.value_date <= l.released_on) AS by_release
    FROM principal_payments p JOIN l ON l.id = p.loan_id WHERE l.released_on IS NOT NULL GROUP BY 1),
  m AS (
    SELECT date_trunc('month', e.day::timestamp)::date AS period, e.region_code, e.bank_id, e.centre_id, e.category,
           sum(e.issued)::bigint AS issued, sum(e.issued_amount) AS issued_amount, sum(e.balance) AS balance,
           sum(e.guarantees)::bigint AS guarantees, sum(e.guaranteed) AS guaranteed
    FROM (
      SELECT l.disbursed_on AS day, l.region_code, l.bank_id, l.centre_id, l.category, 1 AS issued,
             l.principal AS issued_amount, l.principal AS balance, 0 AS guarantees, 0 AS guaranteed
      FROM l WHERE l.disbursed_on IS NOT NULL
      UNION ALL
      SELECT l.approved_on, l.region_code, l.bank_id, l.centre_id, l.category, 0, 0, 0, 1, l.principal FROM l
      UNION ALL
      SELECT l.end_b, l.region_code, l.bank_id, l.centre_id, l.category, 0, 0, -(l.principal - coalesce(paid.by_end_b, 0)), 0, 0
      FROM l LEFT JOIN paid ON paid.loan_id = l.id WHERE l.end_b IS NOT NULL
      UNION ALL
      SELECT l.released_on, l.region_code, l.bank_id, l.centre_id, l.category, 0, 0, 0, -1,
             -(l.principal - coalesce(paid.by_release, 0))
      FROM l LEFT JOIN paid ON paid.loan_id = l.id WHERE l.released_on IS NOT NULL
      UNION ALL
      SELECT p.value_date, l.region_code, l.bank_id, l.centre_id, l.category, 0, 0,
             CASE WHEN l.end_b IS NULL OR p.value_date <= l.end_b THEN -p.principal ELSE 0 END, 0,
             CASE WHEN l.released_on IS NULL OR p.value_date <= l.released_on THEN -p.principal ELSE 0 END
      FROM principal_payments p JOIN l ON l.id = p.loan_id
    ) e GROUP BY 1, 2, 3, 4, 5)
  SELECT 'm'::char(1) AS grain, * FROM m
  UNION ALL
  SELECT 'y', date_trunc('year', period::timestamp)::date, region_code, bank_id, centre_id, category,
         sum(issued)::bigint, sum(issued_amount), sum(balance), sum(guarantees)::bigint, sum(guaranteed)
  FROM m GROUP BY 2, 3, 4, 5, 6;

CREATE VIEW stat_stock_current AS
  SELECT grain, period, region_code, bank_id, centre_id, category, sum(issued)::bigint AS issued,
         sum(issued_amount) AS issued_amount, sum(balance) AS balance, sum(guarantees)::bigint AS guarantees,
         sum(guaranteed) AS guaranteed
  FROM (
    SELECT * FROM stat_stock_rollups
    UNION ALL
    SELECT 'm', period, region_code, bank_id, centre_id, category, issued, issued_amount, balance, guarantees,
           guaranteed
    FROM stat_stock_deltas
    UNION ALL
    SELECT 'y', date_trunc('year', period)::date, region_code, bank_id, centre_id, category, issued,
           issued_amount, balance, guarantees, guaranteed
    FROM stat_stock_deltas
  ) x GROUP BY 1, 2, 3, 4, 5, 6;

CREATE FUNCTION danbao_rebuild_stat_stock() RETURNS VOID LANGUAGE sql AS $$
  DELETE FROM stat_stock_deltas;
  DELETE FROM stat_stock_rollups;
  INSERT INTO stat_stock_rollups SELECT * FROM stat_stock_expected;
$$;

-- Both kinds of rollups, after a bulk load that bypassed their triggers.
CREATE FUNCTION danbao_rebuild_statistics() RETURNS VOID LANGUAGE sql AS $$
  SELECT danbao_rebuild_stat_due();
  SELECT danbao_rebuild_stat_stock();
$$;

-- Both kinds of deltas rolled up; returns how many were moved.
CREATE FUNCTION danbao_roll_up_statistics() RETURNS BIGINT LANGUAGE sql AS $$
  SELECT danbao_roll_up_stat_due() + danbao_roll_up_stat_stock();
$$;

SELECT danbao_rebuild_stat_stock();
