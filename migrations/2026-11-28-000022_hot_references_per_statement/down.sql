DROP TRIGGER banks_id_fixed ON banks;
DROP TRIGGER loans_id_fixed ON loans;
DROP FUNCTION danbao_forbid_id_change();
ALTER TABLE overdue_spans ADD CONSTRAINT overdue_spans_loan_id_fkey FOREIGN KEY (loan_id) REFERENCES loans (id);
CREATE OR REPLACE FUNCTION danbao_overdue_spans_fit_loan() RETURNS trigger LANGUAGE plpgsql AS $$
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
DROP TRIGGER repayment_batch_rows_fit ON repayment_batch_rows;
DROP FUNCTION danbao_batch_rows_fit();
ALTER TABLE repayment_batch_rows ADD CONSTRAINT repayment_batch_rows_loan_id_fkey FOREIGN KEY (loan_id) REFERENCES loans (id),
                                 ADD CONSTRAINT repayment_batch_rows_repayment_id_fkey FOREIGN KEY (repayment_id) REFERENCES repayments (id);
DROP TRIGGER repayment_allocations_fit_repayment ON repayment_allocations;
DROP FUNCTION danbao_allocations_fit_repayments();
ALTER TABLE repayment_allocations ADD CONSTRAINT repayment_allocations_loan_id_fkey FOREIGN KEY (loan_id) REFERENCES loans (id),
                                  ADD CONSTRAINT repayment_allocations_repayment_id_fkey FOREIGN KEY (repayment_id) REFERENCES repayments (id);
ALTER TABLE repayments ADD CONSTRAINT repayments_loan_id_fkey FOREIGN KEY (loan_id) REFERENCES loans (id),
                       ADD CONSTRAINT repayments_bank_id_fkey FOREIGN KEY (bank_id) REFERENCES banks (id);
