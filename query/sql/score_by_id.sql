-- Live scores by id (POST /api/v1/scores: is an id already a score, of which trace; DELETE
-- /api/v1/scores/{id}: the rows to mark deleted). Ids are unique per tenant but the table is
-- keyed by trace: the bloom filter index on ScoreId (migration 011) skips the rest.
SELECT * EXCEPT (Tenant, UpdatedAt)
FROM ${db}.${traces}_scores FINAL
WHERE Tenant = {tenant:String} AND has({score_ids:Array(String)}, ScoreId) AND NOT Deleted
ORDER BY TraceId, ScoreId
