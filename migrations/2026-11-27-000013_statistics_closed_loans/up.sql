-- Overdue and PAR on an as-of date read the instalments not paid by then. Most of those in a
-- long history belong to loans compensated or written off years ago, which are out of the
-- overdue figures from their release on: at a million loans the family read them all, and
-- looked up each one's loan to drop it (0.8 s of a province summary). Each instalment fact
-- now carries its loan's closing date (the release of a compensated or written-off loan), kept
-- by triggers from the loan, so that partial indexes leave closed loans' instalments out.
-- The application never writes it (it is not in schema.rs).

ALTER TABLE instalment_facts ADD COLUMN closed_on DATE;
UPDATE instalment_facts f SET closed_on = l.released_on
  FROM loans l WHERE l.id = f.loan_id AND l.status IN ('compensated', 'written_off');

-- A fact written takes its loan's closing date: each statement's rows that do not carry it
-- are set (a statement trigger, set-based: a row trigger looking the loan up for every fact
-- cost a third of a repayment file's speed). Only facts written for a closed loan need it, so
-- the UPDATE is rare, and its own firing finds nothing more to set.
CREATE FUNCTION danbao_facts_closed_on() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE wrong JSONB;
BEGIN
  -- (Looked for first: an UPDATE, even of no rows, would fire this trigger again.)
  SELECT jsonb_agg(jsonb_build_array(n.loan_id, n.number, c.closed_on)) INTO wrong
  FROM new_rows n
  CROSS JOIN LATERAL (SELECT CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END AS closed_on
                      FROM loans l WHERE l.id = n.loan_id) c
  WHERE n.closed_on IS DISTINCT FROM c.closed_on;
  IF wrong IS NOT NULL THEN
    UPDATE instalment_facts f SET closed_on = (w.value ->> 2)::date
    FROM jsonb_array_elements(wrong) w
    WHERE f.loan_id = (w.value ->> 0)::uuid AND f.number = (w.value ->> 1)::int;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER instalment_facts_closed_on_insert AFTER INSERT ON instalment_facts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_facts_closed_on();
CREATE TRIGGER instalment_facts_closed_on_update AFTER UPDATE ON instalment_facts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_facts_closed_on();

-- A loan closed (or its closing moved): its facts follow. Rare, once in a loan's life.
CREATE FUNCTION danbao_loan_closed_on() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE instalment_facts SET closed_on = CASE WHEN NEW.status IN ('compensated', 'written_off') THEN NEW.released_on END
  WHERE loan_id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER loans_closed_on AFTER UPDATE ON loans
  FOR EACH ROW WHEN ((OLD.status IN ('compensated', 'written_off'), OLD.released_on)
                     IS DISTINCT FROM (NEW.status IN ('compensated', 'written_off'), NEW.released_on))
  EXECUTE FUNCTION danbao_loan_closed_on();

-- What the overdue family reads: instalments never paid, of loans open, or closed on a date.
DROP INDEX instalment_facts_unpaid;
CREATE INDEX instalment_facts_unpaid_open ON instalment_facts (due_date) WHERE paid_on IS NULL AND closed_on IS NULL;
CREATE INDEX instalment_facts_unpaid_closed ON instalment_facts (closed_on) WHERE paid_on IS NULL AND closed_on IS NOT NULL;

-- Every fact carries its loan's closing date (for `danbao verify`, and after a bulk load).
CREATE VIEW instalment_facts_closed_wrong AS
  SELECT f.loan_id, f.number, f.closed_on, c.closed_on AS loan_closed_on
  FROM instalment_facts f
  -- Only the closed loans are joined (a few percent): one pass over the facts, a small hash.
  LEFT JOIN (SELECT l.id, l.released_on AS closed_on FROM loans l WHERE l.status IN ('compensated', 'written_off')) c
    ON c.id = f.loan_id
  WHERE f.closed_on IS DISTINCT FROM c.closed_on;

-- The rebuild after a bulk load (which loaded the facts without their trigger) sets the
-- closing dates first; the deltas of that UPDATE are dropped by the rebuilds.
CREATE OR REPLACE FUNCTION danbao_rebuild_statistics() RETURNS VOID LANGUAGE sql AS $$
  UPDATE instalment_facts f SET closed_on = l.released_on
  FROM loans l WHERE l.id = f.loan_id AND l.status IN ('compensated', 'written_off')
    AND f.closed_on IS DISTINCT FROM l.released_on;
  SELECT danbao_rebuild_stat_due();
  SELECT danbao_rebuild_stat_stock();
$$;
