-- The registry entries of one prompt (GET /api/v1/prompts/{name}): per version, the
-- earliest claim (argMin by (RegisteredAt, TemplateHash)), which every reader and writer
-- agrees on. `Name` leads the table's sorting key, so this is a primary-key read.
SELECT
    Version AS version,
    argMin(TemplateHash, (RegisteredAt, TemplateHash)) AS template_hash,
    argMin(Template, (RegisteredAt, TemplateHash)) AS template,
    toString(argMin(Source, (RegisteredAt, TemplateHash))) AS source,
    toUnixTimestamp64Nano(min(RegisteredAt)) AS registered_at_ns
FROM ${db}.${traces}_prompts
WHERE Name = {name:String} AND Tenant = {tenant:String}
GROUP BY Version
