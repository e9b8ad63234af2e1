-- Argo CD health check for crosskey.dev/CrossAccountBackupPlan
-- (argocd-cm: resource.customizations.health.crosskey.dev_CrossAccountBackupPlan).
-- It reads the kstatus conditions that the operator writes next to Ready.
-- Degraded: Stalled=True for the current generation (only a person can fix it; its
-- reason is in the README's "Condition reasons"). Healthy: Ready=True for the
-- current generation. Progressing: everything else, including Reconciling=True and a
-- status that is missing or older than metadata.generation. Lua 5.1 (gopher-lua in
-- Argo CD). The object is only read.

hs = {}

local function report(state, message)
  hs.status = state
  hs.message = message
  return hs
end

-- "Reason: message" of a condition, or `fallback` when it has neither.
local function describe(condition, fallback)
  local message = condition.message or ""
  if condition.reason ~= nil and condition.reason ~= "" then
    if message ~= "" then
      message = condition.reason .. ": " .. message
    else
      message = condition.reason
    end
  end
  if message == "" then
    return fallback
  end
  return message
end

if obj.status == nil then
  return report("Progressing", "Waiting for the operator to report a status")
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  return report("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end

-- A condition without observedGeneration counts as current.
local function current(condition)
  return condition ~= nil
    and (condition.observedGeneration == nil or generation == nil or condition.observedGeneration >= generation)
end

local stalled = conditions["Stalled"]
if current(stalled) and stalled.status == "True" then
  return report("Degraded", describe(stalled, "Stalled"))
end

local ready = conditions["Ready"]
if ready == nil then
  return report("Progressing", "Waiting for the Ready condition")
end
if not current(ready) then
  return report("Progressing", "Waiting for the Ready condition of generation " .. tostring(generation))
end
if ready.status == "True" then
  return report("Healthy", describe(ready, "Ready"))
end

-- Not Ready, and the operator works on it (Reconciling=True), or Ready is Unknown.
local reconciling = conditions["Reconciling"]
if current(reconciling) and reconciling.status == "True" then
  return report("Progressing", describe(reconciling, "Reconciling"))
end
report("Progressing", describe(ready, "Not ready"))
return hs
