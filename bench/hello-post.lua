-- wrk's request for the benchmarks: POST /api/execute with a hello world.
wrk.method = "POST"
wrk.body = '{"code":"print(1)"}'
wrk.headers["Content-Type"] = "application/json"
