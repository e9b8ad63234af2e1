-- Argo CD health check for crosskey.dev/AwsAccount
-- (argocd-cm: resource.customizations.health.crosskey.dev_AwsAccount).
-- Healthy: Ready=True for the current generation. Degraded: Ready=False for a
-- reason the operator cannot recover from by retrying (see "Condition reasons"
-- in the README). Progressing: everything else, including a status that is
-- missing or older than metadata.generation. Lua 5.1 (gopher-lua in Argo CD).

-- Ready=False reasons that need a user's action:
-- only a change of roleArn, its trust policy or externalId fixes these.
local degraded = {
  AccountMismatch = true,
  AssumeRoleFailed = true,
  AccessDenied = true,
}

hs = {}

local function progressing(message)
  hs.status = "Progressing"
  hs.message = message
  return hs
end

if obj.status == nil then
  return progressing("Waiting for the operator to report a status")
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  return progressing("Waiting for the operator to observe generation " .. tostring(generation))
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  return progressing("Waiting for the Ready condition")
end
if ready.observedGeneration ~= nil and generation ~= nil and ready.observedGeneration < generation then
  return progressing("Waiting for the Ready condition of generation " .. tostring(generation))
end

local message = ready.message or ""
if ready.reason ~= nil and ready.reason ~= "" then
  message = ready.reason .. ": " .. message
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if ready.status == "False" and degraded[ready.reason] then
  hs.status = "Degraded"
  hs.message = message
  return hs
end
-- Ready False for a reason the operator retries on its own (throttling, AWS
-- unavailable, a referenced object not ready yet), or Ready Unknown.
progressing(message)
return hs
