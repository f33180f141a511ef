-- Streamgate: remove the usage the gateway asked the backend for
-- (stream_options.include_usage) from an OpenAI event stream, so the client
-- gets the bytes it would have had without the gateway. Runs only on
-- responses whose request ext_proc marked (metadata streamgate.strip_usage).
--
-- In each body chunk, a whole event (ended by a blank line) whose data has
-- "choices": [] and a "usage" object is dropped, and a "usage": null member
-- is removed from the others. Bytes are never held back: an event split
-- across two chunks passes as it is (the client then sees the usage chunk,
-- in the form it would get by asking for it).

local function dropNull(s)
  if not s:find('"usage"', 1, true) then
    return s
  end
  local out = s:gsub(',%s*"usage"%s*:%s*null', '')
  return out
end

local function clean(event)
  if event:find('"choices"%s*:%s*%[%s*%]') and event:find('"usage"%s*:%s*{') then
    return ""
  end
  return dropNull(event)
end

local function strip(s)
  local parts, at = {}, 1
  while true do
    local i, j = s:find("\r?\n\r?\n", at)
    if not i then break end
    parts[#parts + 1] = clean(s:sub(at, j))
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
