-- wrk script for bench/: one file, three modes chosen by $BENCH_MODE.
--   get      GET $BENCH_PATH
--   post     POST $BENCH_PATH with body $BENCH_BODY (form) and optional Authorization $BENCH_AUTH
--   refresh  POST $BENCH_PATH grant_type=refresh_token with tokens from $BENCH_TOKENS (one per line);
--            each response's refresh_token goes back into the pool, so every chain rotates strictly
--            (a token is never presented twice) while many chains run in parallel.
--   once     POST $BENCH_PATH with each line of $BENCH_BODIES as the body of one request, each used once
--            (W7: a client assertion's jti works once); when they run out, the requests fail visibly.
-- done() prints one JSON line that the harness parses.
local mode = os.getenv("BENCH_MODE") or "get"
local path = os.getenv("BENCH_PATH") or "/"
local auth = os.getenv("BENCH_AUTH")
local body = os.getenv("BENCH_BODY") or ""
local pool = {}
local lost = 0

local headers = {}
if auth and auth ~= "" then headers["Authorization"] = auth end

if mode == "post" then
  wrk.method = "POST"
  wrk.path = path
  wrk.body = body
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers = headers
elseif mode == "get" then
  wrk.method = "GET"
  wrk.path = path
  wrk.headers = headers
end

function init(args)
  if mode == "once" then
    for line in io.lines(os.getenv("BENCH_BODIES")) do
      if line ~= "" then table.insert(pool, line) end
    end
  end
  if mode == "refresh" then
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
      if line ~= "" then table.insert(pool, line) end
    end
  end
end

if mode == "refresh" then
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  request = function()
    local token = table.remove(pool) or "exhausted"
    if os.getenv("BENCH_DEBUG") then io.stderr:write("req " .. token:sub(1, 12) .. " pool " .. #pool .. "\n") end
    return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. token)
  end
  response = function(status, hdrs, resp)
    local token = resp and string.match(resp, '"refresh_token"%s*:%s*"([^"]+)"')
    if status == 200 and token then
      table.insert(pool, 1, token)
    else
      lost = lost + 1
      if os.getenv("BENCH_DEBUG") and lost <= 3 then io.stderr:write(status .. " " .. tostring(resp) .. "\n") end
    end
  end
end

if mode == "once" then
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  local next_body = 1
  request = function()
    local body = pool[next_body] or "grant_type=client_credentials&client_assertion=exhausted"
    next_body = next_body + 1
    return wrk.format("POST", path, headers, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
