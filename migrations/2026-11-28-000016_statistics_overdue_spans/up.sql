-- Overdue and PAR on an as-of date read every instalment not paid by then and summed each
-- one's payments (204 ms of a 515 ms province summary at a million loans; 8,454 loans overdue
-- on the date, 38,261 instalments). Each loan's facts now also give its overdue spans: runs
-- of as-of dates on which it is overdue the same way (its oldest instalment not paid, its
-- principal past due and not paid, its principal not repaid). The figures on a date are the
-- sums of the spans that hold on it, found by a GiST index: one row per loan overdue.
-- The application writes them with the facts (`models::stats::overdue_spans`);
-- `overdue_spans_expected` says the same in SQL, for `danbao verify` and to build them here.
CREATE TABLE overdue_spans (
  loan_id     UUID NOT NULL REFERENCES loans (id),
  starts_on   DATE NOT NULL,
  -- The first date it no longer holds; NULL: it still does.
  ends_on     DATE CHECK (ends_on > starts_on),
  oldest_due  DATE NOT NULL CHECK (oldest_due < starts_on),
  overdue     NUMERIC(18, 2) NOT NULL CHECK (overdue >= 0),
  outstanding NUMERIC(18, 2) NOT NULL CHECK (outstanding >= overdue),
  -- The loan's last due date.
  maturity    DATE NOT NULL CHECK (maturity >= oldest_due),
  -- The loan's cell, and its closing date (the release of a compensated or written-off loan,
  -- from which it is out of the figures), as `overdue_spans_fit_loan` checks.
  region_code TEXT NOT NULL,
  bank_id     UUID NOT NULL,
  centre_id   UUID NOT NULL,
  category    TEXT NOT NULL,
  closed_on   DATE,
  PRIMARY KEY (loan_id, starts_on)
);

-- The dates on which a span counts: up to its end and before its loan's closing.
CREATE FUNCTION danbao_overdue_live(starts_on DATE, ends_on DATE, closed_on DATE) RETURNS daterange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN closed_on <= starts_on THEN 'empty'::daterange
              ELSE daterange(starts_on, least(ends_on, closed_on)) END
$$;
CREATE INDEX overdue_spans_live ON overdue_spans USING gist (danbao_overdue_live(starts_on, ends_on, closed_on));

-- A span carries its loan's cell and closing date.
CREATE FUNCTION danbao_overdue_spans_fit_loan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM new_rows s JOIN loans l ON l.id = s.loan_id
    WHERE (s.region_code, s.bank_id, s.centre_id, s.category) IS DISTINCT FROM (l.region_code, l.bank_id, l.centre_id, l.category)
       OR s.closed_on IS DISTINCT FROM CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END) THEN
    RAISE EXCEPTION 'an overdue span carries its loan''s region, bank, centre, category and closing date'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER overdue_spans_fit_loan AFTER INSERT ON overdue_spans
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_overdue_spans_fit_loan();
CREATE TRIGGER overdue_spans_fit_loan_update AFTER UPDATE ON overdue_spans
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_overdue_spans_fit_loan();
CREATE TRIGGER overdue_spans_no_truncate BEFORE TRUNCATE ON overdue_spans
  FOR EACH STATEMENT EXECUTE FUNCTION danbao_forbid_truncate();

-- A loan closed (or its closing moved): its facts and its spans follow.
CREATE OR REPLACE FUNCTION danbao_loan_closed_on() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE instalment_facts SET closed_on = CASE WHEN NEW.status IN ('compensated', 'written_off') THEN NEW.released_on END
  WHERE loan_id = NEW.id;
  UPDATE overdue_spans SET closed_on = CASE WHEN NEW.status IN ('compensated', 'written_off') THEN NEW.released_on END
  WHERE loan_id = NEW.id;
  RETURN NULL;
END $$;

-- The spans as the facts say, set-based: on each date where a loan's state may change (an
-- instalment falls due the day before, is paid in full, a payment is made), the state, then
-- runs of equal states. Only loans with an instalment paid two days or more late, or not at
-- all, can have any.
CREATE VIEW overdue_spans_expected AS
  WITH late AS (
    SELECT DISTINCT loan_id FROM instalment_facts WHERE paid_on IS NULL OR paid_on > due_date + 1),
  dates AS (
    SELECT f.loan_id, f.due_date + 1 AS a FROM instalment_facts f JOIN late USING (loan_id)
    UNION
    SELECT f.loan_id, f.paid_on FROM instalment_facts f JOIN late USING (loan_id) WHERE f.paid_on IS NOT NULL
    UNION
    SELECT p.loan_id, p.value_date FROM principal_payments p JOIN late USING (loan_id)),
  owed AS (
    SELECT f.loan_id, sum(f.principal) AS principal, max(f.due_date) AS maturity
    FROM instalment_facts f JOIN late USING (loan_id) GROUP BY 1),
  state AS (
    SELECT d.loan_id, d.a, o.oldest_due, o.overdue, w.principal - coalesce(r.repaid, 0) AS outstanding, w.maturity
    FROM dates d
    JOIN owed w USING (loan_id)
    CROSS JOIN LATERAL (
      SELECT min(f.due_date) AS oldest_due,
             sum(f.principal - coalesce((SELECT sum(p.principal) FROM principal_payments p
                                         WHERE p.loan_id = f.loan_id AND p.number = f.number AND p.value_date <= d.a), 0)) AS overdue
      FROM instalment_facts f
      WHERE f.loan_id = d.loan_id AND f.due_date < d.a AND (f.paid_on IS NULL OR f.paid_on > d.a)) o
    CROSS JOIN LATERAL (
      SELECT sum(p.principal) AS repaid FROM principal_payments p WHERE p.loan_id = d.loan_id AND p.value_date <= d.a) r),
  runs AS (
    SELECT s.*, lead(s.a) OVER w AS next_a,
           CASE WHEN (s.oldest_due, s.overdue, s.outstanding)
                     IS NOT DISTINCT FROM lag((s.oldest_due, s.overdue, s.outstanding)) OVER w THEN 0 ELSE 1 END AS starts
    FROM state s WINDOW w AS (PARTITION BY s.loan_id ORDER BY s.a)),
  numbered AS (
    SELECT r.*, sum(r.starts) OVER (PARTITION BY r.loan_id ORDER BY r.a) AS run FROM runs r)
  SELECT loan_id, min(a) AS starts_on, (array_agg(next_a ORDER BY a DESC))[1] AS ends_on, oldest_due, overdue, outstanding,
         maturity
  FROM numbered
  WHERE oldest_due IS NOT NULL
  GROUP BY loan_id, run, oldest_due, overdue, outstanding, maturity;

-- Every loan's spans again from its facts (here, and after facts written by hand).
CREATE FUNCTION danbao_rebuild_overdue_spans() RETURNS VOID LANGUAGE sql AS $$
  DELETE FROM overdue_spans;
  INSERT INTO overdue_spans
  SELECT e.loan_id, e.starts_on, e.ends_on, e.oldest_due, e.overdue, e.outstanding, e.maturity,
         l.region_code, l.bank_id, l.centre_id, l.category,
         CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END
  FROM overdue_spans_expected e JOIN loans l ON l.id = e.loan_id;
$$;
SELECT danbao_rebuild_overdue_spans();

-- Spans whose cell or closing date is not their loan's (for `danbao verify`).
CREATE VIEW overdue_spans_wrong AS
  SELECT s.loan_id, s.starts_on
  FROM overdue_spans s JOIN loans l ON l.id = s.loan_id
  WHERE (s.region_code, s.bank_id, s.centre_id, s.category) IS DISTINCT FROM (l.region_code, l.bank_id, l.centre_id, l.category)
     OR s.closed_on IS DISTINCT FROM CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END;

-- After a bulk load (which loads the spans without their trigger), each span takes its loan's
-- cell and closing date, as the facts their closing date.
CREATE OR REPLACE FUNCTION danbao_rebuild_statistics() RETURNS VOID LANGUAGE sql AS $$
  UPDATE instalment_facts f SET closed_on = l.released_on
  FROM loans l WHERE l.id = f.loan_id AND l.status IN ('compensated', 'written_off')
    AND f.closed_on IS DISTINCT FROM l.released_on;
  UPDATE overdue_spans s
  SET region_code = l.region_code, bank_id = l.bank_id, centre_id = l.centre_id, category = l.category,
      closed_on = CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END
  FROM loans l WHERE l.id = s.loan_id
    AND ((s.region_code, s.bank_id, s.centre_id, s.category) IS DISTINCT FROM (l.region_code, l.bank_id, l.centre_id, l.category)
         OR s.closed_on IS DISTINCT FROM CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END);
  SELECT danbao_rebuild_stat_due();
  SELECT danbao_rebuild_stat_stock();
$$;

-- The corrections of the principal falling due read the late payments and instalments paid
-- late after an as-of date: from the index alone now (they were fetched from the table, most
-- only to be dropped by their due date).
DROP INDEX principal_payments_late;
CREATE INDEX principal_payments_late ON principal_payments (value_date) INCLUDE (due_date, loan_id, principal)
  WHERE value_date > due_date;
DROP INDEX instalment_facts_paid_late;
CREATE INDEX instalment_facts_paid_late ON instalment_facts (paid_on) INCLUDE (due_date, extended, subsidy, loan_id)
  WHERE paid_on > due_date;

-- The count-based rate counts the loans matured in the period from the index alone, and
-- finds those closed by the as-of date among them by a partial index (the others not repaid
-- in full are overdue on it: their spans). Issuance reads the period's loans from the index
-- alone too.
DROP INDEX loans_maturity;
CREATE INDEX loans_maturity ON loans (maturity_date) INCLUDE (region_code, bank_id, centre_id, category)
  WHERE disbursed_on IS NOT NULL;
CREATE INDEX loans_closed_maturity ON loans (maturity_date) WHERE status IN ('compensated', 'written_off');
DROP INDEX loans_disbursed_on;
CREATE INDEX loans_disbursed_on ON loans (disbursed_on)
  INCLUDE (region_code, bank_id, centre_id, category, borrower_id, principal, jobs_declared, waiver)
  WHERE disbursed_on IS NOT NULL;
