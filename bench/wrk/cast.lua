-- wrk script: POST ballots to /api/v1/elections/<id>/ballots, each with a distinct voting code.
--
--   wrk -t T -c C -d D --timeout 10s -s bench/wrk/cast.lua http://127.0.0.1:PORT -- BODIES_FILE ELECTION T
--
-- BODIES_FILE holds one JSON request body per line, each with its own code, built
-- beforehand (bench/ballots.py: browser-sealed ballots are sealed there, not here). Thread
-- k (1..T) sends bodies k, k+T, k+2T, ... so no two requests share a code; if the file
-- runs out the thread wraps around and counts it in "reused" (the benchmark sizes the
-- file so that never happens). done() prints one JSON line.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  table.insert(threads, thread)
  next_id = next_id + 1
end

function init(args)
  local bodies_file, election, nthreads = args[1], args[2], tonumber(args[3])
  bodies = {}
  for line in io.lines(bodies_file) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  stride = nthreads
  cursor = id
  reused = 0
  statuses = {}
  path = "/api/v1/elections/" .. election .. "/ballots"
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  local i = cursor
  cursor = cursor + stride
  if i > #bodies then
    reused = reused + 1
    i = ((i - 1) % #bodies) + 1
  end
  return wrk.format("POST", path, headers, bodies[i])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local by_status, total_reused = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + count
    end
    total_reused = total_reused + thread:get("reused")
  end
  local parts = {}
  for status, count in pairs(by_status) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"reused_codes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, total_reused,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ",")))
end
