-- wrk script: each request checks (or, with APIKEYD_PATH=get_info, reads) a key from the file
-- APIKEYD_KEYS (one key per line, shuffled beforehand: Benchmarks/http.sh runs it through shuf),
-- in file order from a random starting line.
--
-- request() only concatenates the key between a pre-formatted start and end of the request:
-- calling math.random and wrk.format per request made wrk's one thread the bottleneck (99% CPU
-- while the server under test idled at 85%).
local path = "/api/guest/serviceapikey/" .. (os.getenv("APIKEYD_PATH") or "check") .. "?key="
local keys = {}
local count = 0
local position = 0
local head, tail

init = function(args)
  for line in io.lines(os.getenv("APIKEYD_KEYS")) do
    count = count + 1
    keys[count] = line
  end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
  position = math.random(count)
  local template = wrk.format("GET", path .. "\1")
  local split = template:find("\1", 1, true)
  head, tail = template:sub(1, split - 1), template:sub(split + 1)
end

request = function()
  position = position + 1
  if position > count then position = 1 end
  return head .. keys[position] .. tail
end
