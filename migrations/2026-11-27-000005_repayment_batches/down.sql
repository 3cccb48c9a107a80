DROP TABLE repayment_batch_rows;
DROP TABLE repayment_batches;
