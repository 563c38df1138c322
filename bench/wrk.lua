-- wrk script of the supportdesk bench (driven by bench/benchlib.py).
-- Arguments after "--": <requests file> <method> <body file> <expected status>.
-- Each line of the requests file is "<path>" followed by one tab-separated
-- "<Name>: <value>" field per header (an Authorization token, a session Cookie, ...);
-- requests rotate over the lines (e.g. one line per thread), each with the same body.
-- done() prints one "BENCH_JSON {...}" line with the totals.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function parse(line)
  local path, headers = nil, {}
  for field in string.gmatch(line, "[^\t]+") do
    if path == nil then
      path = field
    else
      local name, value = field:match("^([^:]+):%s?(.*)$")
      assert(name, "bad header field: " .. field)
      headers[name] = value
    end
  end
  return path, headers
end

function init(args)
  local requests_file, method, body_file = args[1], args[2], args[3]
  expected = tonumber(args[4])
  unexpected = 0
  local f = assert(io.open(body_file, "r"))
  local body = f:read("*a")
  f:close()
  if body == "" then
    body = nil
  end
  prepared = {}
  for line in io.lines(requests_file) do
    local path, headers = parse(line)
    if path then
      if body then
        headers["Content-Type"] = "application/json"
      end
      table.insert(prepared, wrk.format(method, path, headers, body))
    end
  end
  assert(#prepared > 0, "no requests in " .. requests_file)
  index = (id or 0) * 7919
end

function request()
  index = index + 1
  return prepared[(index % #prepared) + 1]
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors": %d, "unexpected": %d, '
      .. '"p50_us": %d, "p99_us": %d}\n',
    summary.requests,
    summary.duration,
    e.connect + e.read + e.write + e.timeout,
    unexpected_total,
    latency:percentile(50),
    latency:percentile(99)
  ))
end
