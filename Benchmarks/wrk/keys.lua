-- wrk script: each request checks (or, with APIKEYD_PATH=get_info, reads) a key drawn at random
-- from the file APIKEYD_KEYS (one key per line).
local path = "/api/guest/serviceapikey/" .. (os.getenv("APIKEYD_PATH") or "check") .. "?key="
local keys = {}

init = function(args)
  for line in io.lines(os.getenv("APIKEYD_KEYS")) do
    keys[#keys + 1] = line
  end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

request = function()
  return wrk.format("GET", path .. keys[math.random(#keys)])
end
