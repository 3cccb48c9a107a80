-- The period's issuance (loans, principal, jobs, waivers) and the loans maturing in it were
-- counted from every loan disbursed or maturing in the period: two index scans that grow with
-- the data (about 60,000 loans each for a year at a million loans). Both are now also summed
-- by month and cell, kept by a row trigger on the loans (a loan is disbursed once and its
-- maturity moves at most once), so that a period reads its whole months here and only the
-- days around them from the loans.
CREATE TABLE stat_loan_months (
  period        DATE NOT NULL CHECK (period = date_trunc('month', period)::date),
  region_code   TEXT NOT NULL,
  bank_id       UUID NOT NULL,
  centre_id     UUID NOT NULL,
  category      TEXT NOT NULL,
  -- Disbursed in the month: count, principal, jobs declared, waivers and their principal.
  issued        BIGINT NOT NULL CHECK (issued >= 0),
  issued_amount NUMERIC(18, 2) NOT NULL CHECK (issued_amount >= 0),
  jobs          BIGINT NOT NULL CHECK (jobs >= 0),
  waiver_loans  BIGINT NOT NULL CHECK (waiver_loans >= 0 AND waiver_loans <= issued),
  waiver_amount NUMERIC(18, 2) NOT NULL CHECK (waiver_amount >= 0 AND waiver_amount <= issued_amount),
  -- Disbursed loans whose maturity date is in the month.
  matured       BIGINT NOT NULL CHECK (matured >= 0),
  PRIMARY KEY (period, region_code, bank_id, centre_id, category)
);

-- The events of one loan: its disbursement and its maturity (a loan not disbursed has none).
CREATE FUNCTION danbao_stat_loan_events(principal NUMERIC, jobs INT, waiver BOOLEAN, disbursed DATE, maturity DATE)
RETURNS TABLE (period DATE, issued BIGINT, issued_amount NUMERIC, jobs BIGINT, waiver_loans BIGINT,
               waiver_amount NUMERIC, matured BIGINT)
LANGUAGE sql IMMUTABLE AS $$
  SELECT date_trunc('month', e.d)::date, e.i, e.ia, e.j, e.wl, e.wa, e.m FROM (VALUES
    (disbursed, 1::bigint, principal, jobs::bigint, CASE WHEN waiver THEN 1 ELSE 0 END::bigint,
     CASE WHEN waiver THEN principal ELSE 0 END, 0::bigint),
    (CASE WHEN disbursed IS NOT NULL THEN maturity END, 0, 0, 0, 0, 0, 1)
  ) e (d, i, ia, j, wl, wa, m)
  WHERE e.d IS NOT NULL
$$;

-- A loan's events as it is now less its events as it was, by month.
CREATE FUNCTION danbao_stat_loan_change(
  principal NUMERIC, jobs INT, waiver BOOLEAN, disbursed DATE, maturity DATE,
  old_principal NUMERIC, old_jobs INT, old_waiver BOOLEAN, old_disbursed DATE, old_maturity DATE)
RETURNS TABLE (period DATE, issued BIGINT, issued_amount NUMERIC, jobs BIGINT, waiver_loans BIGINT,
               waiver_amount NUMERIC, matured BIGINT)
LANGUAGE sql IMMUTABLE AS $$
  SELECT e.period, sum(e.issued)::bigint, sum(e.issued_amount), sum(e.jobs)::bigint, sum(e.waiver_loans)::bigint,
         sum(e.waiver_amount), sum(e.matured)::bigint
  FROM (
    SELECT * FROM danbao_stat_loan_events(principal, jobs, waiver, disbursed, maturity)
    UNION ALL
    SELECT o.period, -o.issued, -o.issued_amount, -o.jobs, -o.waiver_loans, -o.waiver_amount, -o.matured
    FROM danbao_stat_loan_events(old_principal, old_jobs, old_waiver, old_disbursed, old_maturity) o
  ) e
  GROUP BY 1
$$;

-- Added to the loan's cell's months (the cell is fixed, `loans_cell_fixed`). Rare: a
-- disbursement, an extension. The months are made to exist first and then added to, because
-- an upsert checks the row it proposes (a month's negative change) against the table's checks
-- before it finds the month there.
CREATE FUNCTION danbao_stat_loan_months() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO stat_loan_months
    SELECT c.period, NEW.region_code, NEW.bank_id, NEW.centre_id, NEW.category,
           c.issued, c.issued_amount, c.jobs, c.waiver_loans, c.waiver_amount, c.matured
    FROM danbao_stat_loan_change(NEW.principal, NEW.jobs_declared, NEW.waiver, NEW.disbursed_on, NEW.maturity_date,
                                 NULL, NULL, NULL, NULL, NULL) c
    ON CONFLICT (period, region_code, bank_id, centre_id, category) DO UPDATE
      SET issued = stat_loan_months.issued + EXCLUDED.issued,
          issued_amount = stat_loan_months.issued_amount + EXCLUDED.issued_amount,
          jobs = stat_loan_months.jobs + EXCLUDED.jobs,
          waiver_loans = stat_loan_months.waiver_loans + EXCLUDED.waiver_loans,
          waiver_amount = stat_loan_months.waiver_amount + EXCLUDED.waiver_amount,
          matured = stat_loan_months.matured + EXCLUDED.matured;
    RETURN NULL;
  END IF;
  INSERT INTO stat_loan_months
  SELECT c.period, NEW.region_code, NEW.bank_id, NEW.centre_id, NEW.category, 0, 0, 0, 0, 0, 0
  FROM danbao_stat_loan_change(NEW.principal, NEW.jobs_declared, NEW.waiver, NEW.disbursed_on, NEW.maturity_date,
                               OLD.principal, OLD.jobs_declared, OLD.waiver, OLD.disbursed_on, OLD.maturity_date) c
  ON CONFLICT (period, region_code, bank_id, centre_id, category) DO NOTHING;
  UPDATE stat_loan_months m
  SET issued = m.issued + c.issued, issued_amount = m.issued_amount + c.issued_amount, jobs = m.jobs + c.jobs,
      waiver_loans = m.waiver_loans + c.waiver_loans, waiver_amount = m.waiver_amount + c.waiver_amount,
      matured = m.matured + c.matured
  FROM danbao_stat_loan_change(NEW.principal, NEW.jobs_declared, NEW.waiver, NEW.disbursed_on, NEW.maturity_date,
                               OLD.principal, OLD.jobs_declared, OLD.waiver, OLD.disbursed_on, OLD.maturity_date) c
  WHERE (m.period, m.region_code, m.bank_id, m.centre_id, m.category)
        = (c.period, NEW.region_code, NEW.bank_id, NEW.centre_id, NEW.category);
  RETURN NULL;
END $$;
CREATE TRIGGER loans_stat_months_insert AFTER INSERT ON loans
  FOR EACH ROW WHEN (NEW.disbursed_on IS NOT NULL) EXECUTE FUNCTION danbao_stat_loan_months();
CREATE TRIGGER loans_stat_months_update AFTER UPDATE ON loans
  FOR EACH ROW WHEN (OLD.disbursed_on IS DISTINCT FROM NEW.disbursed_on
                     OR OLD.maturity_date IS DISTINCT FROM NEW.maturity_date
                     OR OLD.principal IS DISTINCT FROM NEW.principal
                     OR OLD.jobs_declared IS DISTINCT FROM NEW.jobs_declared
                     OR OLD.waiver IS DISTINCT FROM NEW.waiver)
  EXECUTE FUNCTION danbao_stat_loan_months();
CREATE TRIGGER loans_no_truncate BEFORE TRUNCATE ON loans
  FOR EACH STATEMENT EXECUTE FUNCTION danbao_forbid_truncate();

-- The months as the loans say (for `danbao verify`, the demo's bulk load and this migration).
CREATE VIEW stat_loan_months_expected AS
  SELECT e.period, l.region_code, l.bank_id, l.centre_id, l.category,
         sum(e.issued) AS issued, sum(e.issued_amount) AS issued_amount, sum(e.jobs) AS jobs,
         sum(e.waiver_loans) AS waiver_loans, sum(e.waiver_amount) AS waiver_amount, sum(e.matured) AS matured
  FROM loans l
  CROSS JOIN LATERAL danbao_stat_loan_events(l.principal, l.jobs_declared, l.waiver, l.disbursed_on, l.maturity_date) e
  WHERE l.disbursed_on IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5;

-- Writes the months again from the loans (zero where a month has none left).
CREATE FUNCTION danbao_rebuild_loan_months() RETURNS BIGINT LANGUAGE sql AS $$
  UPDATE stat_loan_months SET issued = 0, issued_amount = 0, jobs = 0, waiver_loans = 0, waiver_amount = 0, matured = 0;
  INSERT INTO stat_loan_months AS m SELECT * FROM stat_loan_months_expected
  ON CONFLICT (period, region_code, bank_id, centre_id, category) DO UPDATE
    SET issued = EXCLUDED.issued, issued_amount = EXCLUDED.issued_amount, jobs = EXCLUDED.jobs,
        waiver_loans = EXCLUDED.waiver_loans, waiver_amount = EXCLUDED.waiver_amount, matured = EXCLUDED.matured;
  SELECT count(*) FROM stat_loan_months;
$$;

SELECT danbao_rebuild_loan_months();
