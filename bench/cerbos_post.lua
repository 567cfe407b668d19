-- wrk script for the Cerbos PDP's POST /api/check/resources: the peer's own request.json as the body.
-- bench/check_http.py sets CUSTOS_BENCH_CERBOS_BODY to its path; the body is read once.
local path = os.getenv("CUSTOS_BENCH_CERBOS_BODY") or error("CUSTOS_BENCH_CERBOS_BODY is not set")
local file = assert(io.open(path, "r"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body
