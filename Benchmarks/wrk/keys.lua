-- wrk script: each request checks (or, with APIKEYD_PATH=get_info or verify, reads or verifies) a key from the file
-- APIKEYD_KEYS (one key per line, shuffled beforehand: Benchmarks/http.sh runs it through shuf),
-- in file order from a random starting line. APIKEYD_SPELLING says how the key is sent, as
-- FOSSBilling's documentation allows: `get` (GET ...?key=K, the default), `json` (POST with the
-- body {"key": "K"}) or `form` (POST with the body key=K).
--
-- request() only concatenates the key between pre-formatted parts of the request: calling
-- math.random and wrk.format per request made wrk's one thread the bottleneck (99% CPU while the
-- server under test idled at 85%).
local path = "/api/guest/serviceapikey/" .. (os.getenv("APIKEYD_PATH") or "check")
local spelling = os.getenv("APIKEYD_SPELLING") or "get"
local keys = {}
local count = 0
local position = 0
local head, middle, tail, overhead

init = function(args)
  for line in io.lines(os.getenv("APIKEYD_KEYS")) do
    count = count + 1
    keys[count] = line
  end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
  position = math.random(count)
  if spelling == "get" then
    local template = wrk.format("GET", path .. "?key=\1")
    local split = template:find("\1", 1, true)
    head, tail = template:sub(1, split - 1), template:sub(split + 1)
    return
  end
  local contentType, before, after
  if spelling == "json" then
    contentType, before, after = "application/json", '{"key": "', '"}'
  else
    contentType, before, after = "application/x-www-form-urlencoded", "key=", ""
  end
  -- The head up to the Content-Length value, which depends on the key's length (wrk.format
  -- would write its own).
  head = "POST " .. path .. " HTTP/1.1\r\nHost: " .. wrk.host .. "\r\nContent-Type: " .. contentType
    .. "\r\nContent-Length: "
  middle = "\r\n\r\n" .. before
  tail = after
  overhead = #before + #after
end

request = function()
  position = position + 1
  if position > count then position = 1 end
  local key = keys[position]
  if middle == nil then return head .. key .. tail end
  return head .. (#key + overhead) .. middle .. key .. tail
end
