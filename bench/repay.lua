-- wrk script: POST /v1/loans/{id}/repayments on a random loan of BENCH_LOANS (one id a line),
-- each with its own bank_reference (BENCH_RUN-thread-counter), as the bank whose token is
-- BENCH_TOKEN, value date BENCH_DAY, amount 1.00.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local loans = {}
local counter = 0
local headers
local run, day

function init(args)
  for line in io.lines(os.getenv("BENCH_LOANS")) do
    if #line > 0 then
      loans[#loans + 1] = line
    end
  end
  run = os.getenv("BENCH_RUN")
  day = os.getenv("BENCH_DAY")
  headers = {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }
  math.randomseed(tid * 7919)
end

function request()
  counter = counter + 1
  local loan = loans[math.random(#loans)]
  local body = string.format(
    '{"bank_reference":"%s-%d-%d","value_date":"%s","amount":"1.00"}', run, tid, counter, day)
  return wrk.format("POST", "/v1/loans/" .. loan .. "/repayments", headers, body)
end
