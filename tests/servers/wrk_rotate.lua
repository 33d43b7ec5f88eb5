-- wrk_rotate.lua - wrk script for Strata's nginx test and benchmark.
--
--   wrk -s wrk_rotate.lua URL -- /a.txt /b.bin ...
--
-- Each request takes the next path of the list, in turn; every second pass
-- over the list asks for gzip (Accept-Encoding), so nginx also compresses
-- (zlib state allocated and freed per response). At the end one line
-- "WRK_RESULT key=value ..." gives the totals, for scripts to parse:
--   requests, bytes, duration_us, and the errors by kind: connect, read,
--   write, timeout, status (responses with a status above 399 -- wrk
--   counts those as "Non-2xx or 3xx responses").

local paths = {}
local i = 0

function init(args)
  for _, p in ipairs(args) do
    paths[#paths + 1] = p
  end
  if #paths == 0 then
    paths[1] = "/"
  end
end

function request()
  i = i + 1
  local n = #paths
  local path = paths[(i - 1) % n + 1]
  local headers = {}
  if math.floor((i - 1) / n) % 2 == 1 then
    headers["Accept-Encoding"] = "gzip"
  end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.timeout, e.status))
end
