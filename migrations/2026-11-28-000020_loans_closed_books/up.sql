-- The count-based repayment rate counts a loan closed by compensation or write-off as not
-- repaid in full when its payments by the as-of date fall short of its instalments' principal.
-- Summing both for each such loan maturing in a year (1,916 in 2025 at a million loans) was
-- most of the rate's cost at that size, and it grows with the history. After closing, a loan
-- takes no repayment or reversal (its money goes through recoveries), so each closed loan
-- carries its principal not repaid and the value date of its last payment; the per-loan sums
-- are left for an as-of date before that last payment (a release backdated before a payment).

ALTER TABLE loans ADD COLUMN closed_unpaid NUMERIC(18, 2), ADD COLUMN closed_paid_until DATE,
  ADD CONSTRAINT loans_closed_books CHECK (
    status IN ('compensated', 'written_off') OR (closed_unpaid IS NULL AND closed_paid_until IS NULL));

-- All the principal of the loan's instalments (NULL without facts) less all its principal
-- payments, and the value date of the last of them. (The payments' sum and last date in one
-- aggregate: a `max` on its own is planned as a walk down an index on the value date until a
-- row of this loan turns up, most of the index for each loan.)
CREATE FUNCTION danbao_closed_books(loan UUID, OUT unpaid NUMERIC, OUT paid_until DATE)
LANGUAGE sql STABLE AS $$
  SELECT f.principal - coalesce(p.principal, 0), p.last
  FROM (SELECT sum(principal) AS principal FROM instalment_facts WHERE loan_id = loan) f,
       (SELECT sum(principal) AS principal, max(value_date) AS last FROM principal_payments WHERE loan_id = loan) p
$$;

-- Derived, never written: whatever a statement sets (the triggers below set NULL), the columns
-- hold the computed figures on a closed loan and nothing on the others.
CREATE FUNCTION danbao_loan_closed_books() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('compensated', 'written_off') THEN
    SELECT b.unpaid, b.paid_until INTO NEW.closed_unpaid, NEW.closed_paid_until FROM danbao_closed_books(NEW.id) b;
  ELSE
    NEW.closed_unpaid := NULL;
    NEW.closed_paid_until := NULL;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER loans_closed_books BEFORE INSERT OR UPDATE OF status, closed_unpaid, closed_paid_until
  ON loans FOR EACH ROW EXECUTE FUNCTION danbao_loan_closed_books();

-- Facts or payments of a closed loan that change (the application writes none, but a
-- statement could) recompute its columns. `= ANY (ARRAY(…))`: the loans are found by their
-- key whatever the planner guesses of a transition table's size; a repayment file's chunk
-- touches thousands of open loans and finds none closed.
CREATE FUNCTION danbao_closed_books_touch(ids UUID[]) RETURNS void LANGUAGE sql AS $$
  UPDATE loans l SET closed_unpaid = NULL
  WHERE l.id = ANY (ids) AND l.status IN ('compensated', 'written_off')
    AND NOT EXISTS (SELECT 1 FROM danbao_closed_books(l.id) b
                    WHERE b.unpaid IS NOT DISTINCT FROM l.closed_unpaid
                      AND b.paid_until IS NOT DISTINCT FROM l.closed_paid_until)
$$;
CREATE FUNCTION danbao_closed_books_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM danbao_closed_books_touch(ARRAY(SELECT DISTINCT o.loan_id FROM old_rows o));
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    PERFORM danbao_closed_books_touch(ARRAY(SELECT DISTINCT n.loan_id FROM new_rows n));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER instalment_facts_closed_books_insert AFTER INSERT ON instalment_facts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_closed_books_changed();
CREATE TRIGGER instalment_facts_closed_books_update AFTER UPDATE ON instalment_facts
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_closed_books_changed();
CREATE TRIGGER instalment_facts_closed_books_delete AFTER DELETE ON instalment_facts
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_closed_books_changed();
CREATE TRIGGER principal_payments_closed_books_insert AFTER INSERT ON principal_payments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_closed_books_changed();
CREATE TRIGGER principal_payments_closed_books_update AFTER UPDATE ON principal_payments
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_closed_books_changed();
CREATE TRIGGER principal_payments_closed_books_delete AFTER DELETE ON principal_payments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_closed_books_changed();

-- The closed loans whose columns are not what their books give (the CHECK above keeps the
-- others empty): `danbao verify` lists them, and the demo's bulk load (which loads loans,
-- facts and payments without their triggers) rewrites them. Each loan is looked at through
-- its own key, never joined to another scan of the loans: right after a bulk load the
-- planner knows nothing of the tables' sizes and may pick a nested loop over both.
CREATE VIEW loans_closed_books_wrong AS
SELECT l.id, l.closed_unpaid, l.closed_paid_until, b.unpaid AS books_unpaid, b.paid_until AS books_paid_until
FROM loans l CROSS JOIN LATERAL danbao_closed_books(l.id) b
WHERE l.status IN ('compensated', 'written_off')
  AND (l.closed_unpaid, l.closed_paid_until) IS DISTINCT FROM (b.unpaid, b.paid_until);

CREATE FUNCTION danbao_rebuild_closed_books() RETURNS BIGINT LANGUAGE sql AS $$
  WITH fixed AS (
    UPDATE loans l SET (closed_unpaid, closed_paid_until) = (SELECT b.unpaid, b.paid_until FROM danbao_closed_books(l.id) b)
    WHERE l.status IN ('compensated', 'written_off')
      AND NOT EXISTS (SELECT 1 FROM danbao_closed_books(l.id) b
                      WHERE (b.unpaid, b.paid_until) IS NOT DISTINCT FROM (l.closed_unpaid, l.closed_paid_until))
    RETURNING 1)
  SELECT count(*) FROM fixed
$$;

SELECT danbao_rebuild_closed_books();
