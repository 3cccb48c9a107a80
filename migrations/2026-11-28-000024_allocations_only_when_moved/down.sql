-- The rows written meanwhile are kept; repayments booked meanwhile get their first row back,
-- so that the view of every repayment's latest row covers them again.
INSERT INTO repayment_allocations (repayment_id, loan_id, to_penalty, to_interest, to_principal)
SELECT r.id, r.loan_id, r.to_penalty, r.to_interest, r.to_principal
FROM repayments r
WHERE NOT EXISTS (SELECT 1 FROM repayment_allocations a WHERE a.repayment_id = r.id)
ORDER BY r.created_at, r.id;
CREATE OR REPLACE VIEW repayment_allocations_current AS
  SELECT DISTINCT ON (repayment_id) repayment_id, loan_id, to_penalty, to_interest, to_principal
  FROM repayment_allocations
  ORDER BY repayment_id, id DESC;
