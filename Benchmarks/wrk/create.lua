-- wrk script: every request creates a key as admin (a durable write).
-- APIKEYD_AUTH holds base64("admin:<token>").
local auth = "Basic " .. os.getenv("APIKEYD_AUTH")
local counter = 0

request = function()
  counter = counter + 1
  local body = "client_id=" .. (counter % 1000 + 1) .. "&config[custom_tier]=pro&config[custom_monthlyLimit]=250"
  return wrk.format("POST", "/api/admin/serviceapikey/create", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, body)
end

local failures = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"error": null', 1, true) then
    failures = failures + 1
  end
end

done = function(summary, latency, requests)
  io.write(string.format("apikeyd create failures: %d\n", failures))
end
