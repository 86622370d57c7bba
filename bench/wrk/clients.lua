-- clients.lua: wrk script for scripts/bench-load.sh. Each request carries
-- X-Forwarded-For with a client address cycling over `ips` distinct values
-- from `offset` (the n-th address as bench/loadgen's addr: 10.0.0.0/8,
-- then 11.0.0.0/8, ...), so the gateway sees many clients, as the Go load
-- generator sends them, at a fraction of its CPU cost.
--
--   wrk -t1 -c64 -d8s -s bench/wrk/clients.lua URL -- OFFSET IPS [MAX] [CLOSE]
--
-- MAX > 0 stops the run after that many responses (the memory phase);
-- CLOSE = 1 sends Connection: close (one TLS handshake per request).
-- done() prints one JSON object: requests, seconds, rps, errors, status
-- counts and latency percentiles in ms.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function addr(n)
  return string.format("%d.%d.%d.%d", 10 + math.floor(n / 16777216) % 100,
    math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

function init(args)
  offset = tonumber(args[1] or "0")
  ips = tonumber(args[2] or "10000")
  maxreq = tonumber(args[3] or "0")
  close = args[4] == "1"
  -- bench-load runs one thread (-t1); more would send the same sequence.
  n = 0
  statuses = {}
  responses = 0
  hdr = { ["User-Agent"] = "rampart-loadgen/1.0", ["Accept"] = "application/json" }
  if close then hdr["Connection"] = "close" end
  -- Up to 20000 distinct requests are built once; more are built as sent.
  cache = nil
  if ips <= 20000 then
    cache = {}
    for i = 0, ips - 1 do
      hdr["X-Forwarded-For"] = addr(offset + i)
      cache[i] = wrk.format("GET", wrk.path, hdr)
    end
  end
end

function request()
  local i = n % ips
  n = n + 1
  if cache then return cache[i] end
  hdr["X-Forwarded-For"] = addr(offset + i)
  return wrk.format("GET", wrk.path, hdr)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  responses = responses + 1
  if maxreq > 0 and responses >= maxreq then
    -- wrk's main thread sleeps for -d: this thread stops, then SIGINT
    -- (delivered to the main thread once this one is gone) ends the run.
    maxreq = 0
    wrk.thread:stop()
    os.execute("(sleep 0.2; kill -INT $PPID) >/dev/null 2>&1 &")
  end
end

function done(summary, latency, requests)
  local st = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses") or {}
    for code, c in pairs(s) do st[code] = (st[code] or 0) + c end
  end
  local parts = {}
  for code, c in pairs(st) do table.insert(parts, string.format('"%d":%d', code, c)) end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format('{"mode":"wrk","requests":%d,"seconds":%.3f,"rps":%.1f,"errors":%d,' ..
    '"status":{%s},"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, secs, summary.requests / secs, e.connect + e.read + e.write + e.timeout,
    table.concat(parts, ","), latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
