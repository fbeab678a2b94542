-- The change audit: who made each write and when (RFC 3339 UTC text with
-- a fixed number of digits, so that text order is time order). NULL for
-- entries written before this migration.
ALTER TABLE changelog ADD COLUMN actor TEXT NULL;
ALTER TABLE changelog ADD COLUMN written_at TEXT NULL;

-- The SHA-256 of the last bootstrap document merged into each organization:
-- a start-up with the same document skips the merge.
CREATE TABLE bootstrap (
    org_id   TEXT    NOT NULL PRIMARY KEY,
    sha256   TEXT    NOT NULL,
    revision INTEGER NOT NULL
);
