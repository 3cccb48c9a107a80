DROP TRIGGER repayments_fit_loan ON repayments;
DROP FUNCTION danbao_repayments_fit_loans();
CREATE TRIGGER repayments_fit_loan BEFORE INSERT ON repayments FOR EACH ROW EXECUTE FUNCTION danbao_repayment_fits_loan();
