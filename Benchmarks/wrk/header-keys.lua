-- wrk script: each request sends the next key of the file WRK_KEYS (one key per line) in the
-- X-API-Key header, from a random starting line; the path is the URL's. Requests are built by
-- concatenating pre-formatted parts, so wrk's thread is not the bottleneck.
local keys = {}
local count = 0
local position = 0
local head, tail

init = function(args)
  for line in io.lines(os.getenv("WRK_KEYS")) do
    count = count + 1
    keys[count] = line
  end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
  position = math.random(count)
  local template = wrk.format("GET", wrk.path, { ["X-API-Key"] = "\1" })
  local split = template:find("\1", 1, true)
  head, tail = template:sub(1, split - 1), template:sub(split + 1)
end

request = function()
  position = position % count + 1
  return head .. keys[position] .. tail
end
