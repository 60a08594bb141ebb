-- wrk script: POST pre-signed Meta webhooks, each with its own message id, read from
-- the file named by BODIES (one "signature<TAB>body" per line), one after the other.
local bodies = {}
local next_index = 1

function init(args)
  local path = os.getenv("BODIES")
  for line in io.lines(path) do
    local tab = string.find(line, "\t", 1, true)
    bodies[#bodies + 1] = { string.sub(line, 1, tab - 1), string.sub(line, tab + 1) }
  end
  -- Threads start at different places so that they do not send the same ids.
  next_index = (tonumber(os.getenv("WRK_THREAD_OFFSET") or "0") + math.random(#bodies)) % #bodies + 1
end

function request()
  local item = bodies[next_index]
  next_index = next_index % #bodies + 1
  return wrk.format("POST", "/webhooks/meta",
    { ["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = item[1] }, item[2])
end
