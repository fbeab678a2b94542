-- Warden's SQLite store: each organization's revision, its entities as
-- JSON rows (layout in src/store/rows.rs), and the change log of its writes.

-- A deleted organization keeps its row (live = 0) so that its revision
-- continues if it is created again.
CREATE TABLE orgs (
    org_id   TEXT    NOT NULL PRIMARY KEY,
    revision INTEGER NOT NULL,
    live     INTEGER NOT NULL CHECK (live IN (0, 1))
);

CREATE TABLE entities (
    org_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    module TEXT NOT NULL,
    record TEXT NOT NULL,
    id     TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (org_id, kind, module, record, id)
) WITHOUT ROWID;

-- changes is NULL for a write too large to log: a reader reloads instead.
CREATE TABLE changelog (
    org_id   TEXT    NOT NULL,
    revision INTEGER NOT NULL,
    changes  TEXT    NULL,
    PRIMARY KEY (org_id, revision)
);
