-- Warden's PostgreSQL store: each organization's revision, its entities as
-- JSON rows (layout in src/store/rows.rs), and the change log of its writes.
-- The tables of the SQLite store, plus generations (below). Keys compare
-- bytewise (COLLATE "C"), whatever the database's locale.

-- A deleted organization keeps its row (live = false) so that its revision
-- continues if it is created again. A commit locks this row for its whole
-- transaction: writers of one organization, in any replica, go one at a time.
--
-- generation: the revision of the write that last emptied the organization
-- (created, replaced or deleted it). Its entity rows all carry it: a write
-- that empties the organization files the new rows under its own revision,
-- so they never meet, in the primary key, the rows it deletes.
CREATE TABLE orgs (
    org_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    revision   BIGINT  NOT NULL CHECK (revision >= 0),
    live       BOOLEAN NOT NULL,
    generation BIGINT  NOT NULL CHECK (generation >= 0)
);

CREATE TABLE entities (
    org_id     TEXT COLLATE "C" NOT NULL,
    generation BIGINT NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    module     TEXT COLLATE "C" NOT NULL,
    record     TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (org_id, generation, kind, module, record, id)
);

-- changes is NULL for a write too large to log: a reader reloads instead.
CREATE TABLE changelog (
    org_id   TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL,
    changes  TEXT NULL,
    PRIMARY KEY (org_id, revision)
);
