CREATE INDEX repayments_loan ON repayments (loan_id, value_date, created_at);
DROP INDEX repayments_loan_booked;
