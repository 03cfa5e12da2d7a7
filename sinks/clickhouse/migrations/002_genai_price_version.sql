-- Which price table a computed cost came from (e.g. `genai-prices==0.2.3`), so costs can
-- be audited or recomputed when prices change. Empty for reported or missing costs.
ALTER TABLE ${db}.${traces}
    ADD COLUMN IF NOT EXISTS `GenAICostPriceVersion` LowCardinality(String) CODEC(ZSTD(1)) AFTER `GenAICostSource`;
