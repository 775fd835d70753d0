-- wrk script for benchmarks/bench_http.py: rotate over prepared requests, report JSON when done.
--
--   wrk ... -s rotate.lua URL -- PATHS_FILE [BODIES_FILE]
--
-- PATHS_FILE has one request path per line (query string included); each request takes the next
-- one, every thread starting at its own offset. With BODIES_FILE (one JSON body per line) the
-- requests are POSTs of the next body to the first path. After the run one line is printed:
--   WRK_JSON {"requests":..,"duration_us":..,"errors":{..},"latency_us":{"p50":..,..}}
-- which bench_http.py parses (wrk's own summary is printed before it).

local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

local function read_lines(path)
   local lines = {}
   local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   for line in file:lines() do
      if line ~= "" then
         table.insert(lines, line)
      end
   end
   file:close()
   assert(#lines > 0, path .. " has no lines")
   return lines
end

local requests = {}
local position = 0

function init(args)
   local paths = read_lines(args[1])
   if args[2] then
      local headers = { ["Content-Type"] = "application/json" }
      for _, body in ipairs(read_lines(args[2])) do
         table.insert(requests, wrk.format("POST", paths[1], headers, body))
      end
   else
      for _, path in ipairs(paths) do
         table.insert(requests, wrk.format("GET", path))
      end
   end
   -- spread the threads over the list (golden-ratio offsets) so they do not request the same ids in step
   position = math.floor(#requests * ((id * 0.6180339887) % 1))
end

function request()
   position = position % #requests + 1
   return requests[position]
end

function done(summary, latency)
   local percentiles = {}
   for _, p in ipairs({ 50, 90, 99, 99.9 }) do
      percentiles[string.format("p%g", p)] = latency:percentile(p)
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p99.9":%d,"mean":%.1f,"stdev":%.1f,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      percentiles.p50, percentiles.p90, percentiles.p99, percentiles["p99.9"],
      latency.mean, latency.stdev, latency.max
   ))
end
