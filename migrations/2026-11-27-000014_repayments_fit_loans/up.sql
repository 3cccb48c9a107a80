-- The rule of repayments_fit_loan (a repayment belongs to a disbursed loan of its bank, on or
-- after the disbursement) checked once per statement over its new rows, instead of a loan
-- lookup per row: a repayment file inserts thousands at once, and the row trigger was a third
-- of their insert's time (0.5 of 1.6 s per 100,000 rows). Same name, so the demo's bulk
-- load still switches it off and checks its rule over the whole table.
CREATE FUNCTION danbao_repayments_fit_loans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows n LEFT JOIN loans l ON l.id = n.loan_id
             WHERE l.id IS NULL OR l.bank_id <> n.bank_id OR l.disbursed_on IS NULL
                OR n.value_date < l.disbursed_on) THEN
    RAISE EXCEPTION 'a repayment belongs to a disbursed loan of its bank, on or after the disbursement'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER repayments_fit_loan ON repayments;
CREATE TRIGGER repayments_fit_loan AFTER INSERT ON repayments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION danbao_repayments_fit_loans();
