-- wrk script for POST /api/v1/check: a fixed JSON body and the agent's delegation token as bearer.
-- bench/check_http.py sets both variables; the body is built once, so wrk sends a precomputed request.
local token = os.getenv("CUSTOS_BENCH_TOKEN") or error("CUSTOS_BENCH_TOKEN is not set")
local resource = os.getenv("CUSTOS_BENCH_RESOURCE") or error("CUSTOS_BENCH_RESOURCE is not set")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = string.format(
  '{"action":"read","resource":"%s","context":{"intent":"benchmark the runtime check","tool":"wrk",'
    .. '"session_id":"bench-session","request_id":"bench-request"}}',
  resource
)
