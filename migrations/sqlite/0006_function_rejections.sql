-- Refused calls (queue full, waited too long, runtime missing) are counted per function, version,
-- outcome and second instead of a row each: a flood of refusals must not crowd out the records of
-- the calls that were served. No foreign key, like the invocations: the delete removes them.
CREATE TABLE function_rejections (
    function_id TEXT NOT NULL,
    version     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    -- Unix seconds.
    second      BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (function_id, version, outcome, second)
);
