-- Streamgate: remove the usage the gateway asked the backend for
-- (stream_options.include_usage) from an OpenAI event stream, so the client
-- gets the bytes it would have had without the gateway. Runs only on
-- responses whose request ext_proc marked (metadata streamgate.strip_usage).
--
-- In each body chunk, a whole event (ended by a blank line) whose data has
-- "choices":[] and a "usage" object is dropped, and "usage":null members are
-- removed from the others. Bytes are never held back: an event split across
-- two chunks passes as it is (the client then sees the usage chunk, in the
-- form it would get by asking for it). Plain searches first: a chunk with
-- neither marker costs one copy and two scans.

local NULL = ',"usage":null'

local function dropNull(s)
  local i = s:find(NULL, 1, true)
  if not i then
    return s
  end
  local parts, at = {}, 1
  while i do
    parts[#parts + 1] = s:sub(at, i - 1)
    at = i + #NULL
    i = s:find(NULL, at, true)
  end
  parts[#parts + 1] = s:sub(at)
  return table.concat(parts)
end

local function usageOnly(event)
  return event:find('"choices"%s*:%s*%[%s*%]') and event:find('"usage"%s*:%s*{')
end

local function strip(s)
  if not s:find('"choices":[]', 1, true) and not s:find('"choices": []', 1, true) then
    return dropNull(s)
  end
  local parts, at = {}, 1
  while true do
    local i, j = s:find("\r?\n\r?\n", at)
    if not i then break end
    local event = s:sub(at, j)
    if not usageOnly(event) then
      parts[#parts + 1] = dropNull(event)
    end
    at = j + 1
  end
  if at <= #s then
    parts[#parts + 1] = dropNull(s:sub(at))
  end
  return table.concat(parts)
end

function envoy_on_response(handle)
  local md = handle:streamInfo():dynamicMetadata():get("streamgate")
  if md == nil or md["strip_usage"] ~= true then
    return
  end
  for chunk in handle:bodyChunks() do
    local n = chunk:length()
    if n > 0 then
      local s = chunk:getBytes(0, n)
      local out = strip(s)
      if #out ~= n then
        chunk:setBytes(out)
      end
    end
  end
end
