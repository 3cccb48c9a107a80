-- A repayment is booked with its allocation (repayments.to_penalty, to_interest,
-- to_principal), and every write also appended that allocation as a first row of
-- repayment_allocations: one more row, two more index entries and a per-statement check for
-- each repayment, a tenth of what a repayment file asked of PostgreSQL. From now on a row is
-- appended only when a later write moves a repayment's allocation (a backdated repayment, a
-- reversal, an extension); until then its current allocation is the one it was booked with.
-- The rows written before stay, and agree with that: a first row equals the booking.
CREATE OR REPLACE VIEW repayment_allocations_current AS
  SELECT DISTINCT ON (repayment_id) repayment_id, loan_id, to_penalty, to_interest, to_principal
  FROM (SELECT id AS repayment_id, loan_id, to_penalty, to_interest, to_principal, 0::int8 AS seq
        FROM repayments
        UNION ALL
        SELECT repayment_id, loan_id, to_penalty, to_interest, to_principal, id
        FROM repayment_allocations) c
  ORDER BY repayment_id, seq DESC;
